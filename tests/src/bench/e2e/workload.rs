//! What the end-to-end benchmark sends and what the balancers do with it:
//! the VIP and its backends, the generator's frames and template, xlb's
//! desired state and the nftables ruleset of the kernel case.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
};

use anyhow::{ensure, Context, Result};
use lb_common::{
    gen_frame::{self, GenFrame},
    GlobalConfig, VipKey, PROTO_TCP, PROTO_UDP,
};
use lb_userspace::reconcile::{DesiredBackend, DesiredState, DesiredVip};

use super::topology::{GEN_ADDR, LB_OUT_ADDR};
use crate::frames::{Frame, L4, TCP_SYN};

pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 30, 0, 1);
pub const VIP_PORT: u16 = 80;
pub const BACKENDS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 33, 0, 1),
    Ipv4Addr::new(10, 33, 0, 2),
    Ipv4Addr::new(10, 33, 0, 3),
];
/// First source port of the generator's cycle.
pub const SPORT_BASE: u16 = 10_000;
/// Bytes of every generated frame (64 on the wire with the FCS).
pub const FRAME_LEN: usize = gen_frame::GEN_LEN;

/// The nftables table of the `nftables` case.
pub const NFT_TABLE: &str = "xlb_e2e";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    TcpSyn,
}

impl Proto {
    pub const ALL: [Proto; 2] = [Proto::Udp, Proto::TcpSyn];

    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::TcpSyn => "tcp_syn",
        }
    }

    fn number(self) -> u8 {
        match self {
            Proto::Udp => PROTO_UDP,
            Proto::TcpSyn => PROTO_TCP,
        }
    }
}

pub fn vip_key(proto: Proto) -> VipKey {
    VipKey::new(IpAddr::V4(VIP), VIP_PORT, proto.number())
}

/// The GUE destination port of the `xlb_gue` case.
pub const GUE_PORT: u16 = 6080;

/// xlb's configuration: VIP 10.30.0.1:80 UDP and TCP, 3 backends each of
/// weight 100, handed to them by `forwarding` (encapsulated from
/// `xlbe-lbout`'s address, or MACs rewritten) and redirected there.
pub fn desired_state(lbout_ifindex: u32, forwarding: lb_common::Forwarding) -> DesiredState {
    let vip = |proto: Proto| DesiredVip {
        key: vip_key(proto),
        name: format!("e2e-{}", proto.name()),
        flags: 0,
        udp_idle_timeout_ms: lb_common::DEFAULT_UDP_IDLE_TIMEOUT_MS,
        forwarding,
        gue_port: if forwarding == lb_common::Forwarding::Gue {
            GUE_PORT
        } else {
            0
        },
        policy: Default::default(),
        backends: BACKENDS
            .iter()
            .map(|b| DesiredBackend {
                addr: IpAddr::V4(*b),
                weight: 100,
                healthy: true,
            })
            .collect(),
    };
    DesiredState {
        global: GlobalConfig::new(Some(LB_OUT_ADDR), None),
        tx_ports: BTreeSet::from([lbout_ifindex]),
        vips: vec![vip(Proto::Udp), vip(Proto::TcpSyn)],
    }
}

/// The DNAT load balancer people build with nftables: the backend is jhash
/// of the 5-tuple mod 3, looked up in an anonymous map (only a connection's
/// first packet sees the rule; conntrack translates the rest).
pub fn nft_ruleset() -> String {
    let backends: Vec<String> = BACKENDS
        .iter()
        .enumerate()
        .map(|(i, b)| format!("{i} : {b}"))
        .collect();
    let map = backends.join(", ");
    let n = BACKENDS.len();
    let rule = |l4: &str| {
        format!(
            "    ip daddr {VIP} {l4} dport {VIP_PORT} counter dnat to jhash ip saddr . ip daddr \
             . {l4} sport . {l4} dport mod {n} map {{ {map} }}\n"
        )
    };
    format!(
        "table ip {NFT_TABLE} {{\n  chain prerouting {{\n    type nat hook prerouting priority \
         dstnat; policy accept;\n{}{}  }}\n}}\n",
        rule("udp"),
        rule("tcp")
    )
}

/// A 60-byte frame from the generator to `dst`:80: UDP with 18 bytes of
/// payload, or a TCP SYN without options or payload (padded like a 64-byte
/// frame on the wire).
pub fn build_frame(
    proto: Proto,
    dst: Ipv4Addr,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
) -> [u8; FRAME_LEN] {
    let (src, dst) = (IpAddr::V4(GEN_ADDR), IpAddr::V4(dst));
    let mut f = match proto {
        Proto::Udp => {
            let mut f = Frame::udp(src, SPORT_BASE, dst, VIP_PORT, dst_mac);
            f.payload = b"xlb e2e udp 64byte".to_vec();
            f
        }
        Proto::TcpSyn => {
            let mut f = Frame::tcp(src, SPORT_BASE, dst, VIP_PORT, dst_mac);
            f.l4 = L4::Tcp { flags: TCP_SYN };
            f.payload.clear();
            f
        }
    };
    f.src_mac = src_mac;
    let bytes = f.build();
    assert!(bytes.len() <= FRAME_LEN, "{} bytes", bytes.len());
    let mut frame = [0; FRAME_LEN];
    frame[..bytes.len()].copy_from_slice(&bytes);
    frame
}

/// The generator's template: `proto` frames to `dst`:80 from 10.31.0.2,
/// source ports `SPORT_BASE ..+ flows` (a power of two).
pub fn template(
    proto: Proto,
    dst: Ipv4Addr,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    flows: u32,
) -> Result<GenFrame> {
    ensure!(flows.is_power_of_two(), "flows must be a power of two");
    let frame = build_frame(proto, dst, src_mac, dst_mac);
    let flow_bits = u8::try_from(flows.trailing_zeros()).context("flow bits")?;
    GenFrame::new(&frame, flow_bits).context("the generator's template")
}

#[cfg(test)]
mod tests {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    use super::*;

    #[test]
    fn frames_are_60_bytes_with_valid_checksums() {
        for proto in Proto::ALL {
            let f = build_frame(proto, VIP, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
            assert_eq!(f.len(), FRAME_LEN);
            let p = SlicedPacket::from_ethernet(&f).unwrap();
            let Some(NetSlice::Ipv4(ip)) = &p.net else {
                panic!("not IPv4")
            };
            assert_eq!(ip.header().destination_addr(), VIP);
            match (&p.transport, proto) {
                (Some(TransportSlice::Udp(u)), Proto::Udp) => {
                    assert_eq!(u.source_port(), SPORT_BASE)
                }
                (Some(TransportSlice::Tcp(t)), Proto::TcpSyn) => {
                    assert!(t.syn() && !t.ack());
                    assert_eq!(t.source_port(), SPORT_BASE)
                }
                other => panic!("{proto:?}: {other:?}"),
            }
            let t = GenFrame::new(&f, 10).unwrap();
            assert_eq!(t.frame(), f);
            assert_eq!(t.first_sport(), SPORT_BASE);
        }
    }

    #[test]
    fn the_flow_mix_is_a_permutation() {
        use gen_frame::flow_of_frame;
        for flows in [1u32, 2, 1024, 16_384] {
            let bits = flows.trailing_zeros();
            for cycle in [0, 1, 7] {
                let seen: BTreeSet<u32> = (0..flows)
                    .map(|n| flow_of_frame(cycle * flows + n, bits))
                    .collect();
                assert_eq!(seen.len(), flows as usize);
            }
        }
        // Neighbouring frames are far-apart flows.
        assert!(flow_of_frame(1, 14).abs_diff(flow_of_frame(2, 14)) > 16);
        // A flow's place in a 64-frame batch moves from cycle to cycle.
        let place = |cycle: u32| {
            (0..16_384u32)
                .find(|&n| flow_of_frame(cycle * 16_384 + n, 14) == 5)
                .unwrap()
                % 64
        };
        let places: BTreeSet<u32> = (0..64).map(place).collect();
        assert_eq!(places.len(), 64);
    }

    #[test]
    fn ruleset_names_every_backend() {
        let r = nft_ruleset();
        assert!(r.contains("0 : 10.33.0.1, 1 : 10.33.0.2, 2 : 10.33.0.3"));
        assert!(r.contains("udp sport . udp dport mod 3"));
        assert!(r.contains("tcp sport . tcp dport mod 3"));
    }
}
