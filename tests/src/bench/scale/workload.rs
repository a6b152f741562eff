//! What the scale curves install and send: VIPs with backends on a routed
//! prefix (one gateway neighbour, however many backends), and the frames of
//! the measured flows, spread over every VIP of a point.

use std::net::{IpAddr, Ipv4Addr};

use lb_common::{VipKey, PROTO_TCP, VIP_F_NO_FLOW_TABLE};
use lb_userspace::reconcile::{DesiredBackend, DesiredState, DesiredVip};

use crate::{
    bench::{
        env::{global_config, Program},
        scenarios::{NewFlows, Scenario, CLIENT4},
        testrun::XDP_TX,
    },
    frames::{Frame, L4, TCP_ACK, TCP_PSH, TCP_SYN},
};

/// Established flows every point sends (one frame each, in turn): the same
/// working set at every point, so a curve shows only what its variable does.
pub const FLOWS: usize = 10_000;
/// Backends live here, routed through `env::GATEWAY`.
pub const BACKEND_PREFIX: &str = "10.200.0.0/16";
/// The TCP port of every VIP of the curves.
pub const PORT: u16 = 80;
/// The flow-table VIP of the one-VIP curves.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 110, 0, 1);
/// The connection-table-bypassing VIP of the one-VIP curves (Maglev path).
pub const VIP_NO_FLOWS: Ipv4Addr = Ipv4Addr::new(10, 110, 0, 2);
const TCP_PAYLOAD: &[u8] = b"xlbxlb";
/// First client source port.
const SPORT_BASE: u16 = 1024;

/// Backend `i` (`i < 62,500`): 10.200.x.y.
pub fn backend(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 200, (i / 250) as u8, (i % 250 + 1) as u8))
}

/// VIP address `i` (`i < 62,500`) of the VIP curve: 10.100.x.y.
pub fn vip_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 100, (i / 250) as u8, (i % 250 + 1) as u8)
}

pub fn vip_key(addr: Ipv4Addr) -> VipKey {
    VipKey::new(IpAddr::V4(addr), PORT, PROTO_TCP)
}

/// TCP VIPs at `addrs`, each with backends `0..backends`, weight 100.
pub fn desired(addrs: &[(Ipv4Addr, u32)], backends: usize) -> DesiredState {
    let bs: Vec<DesiredBackend> = (0..backends)
        .map(|i| DesiredBackend {
            addr: backend(i),
            weight: 100,
            healthy: true,
        })
        .collect();
    DesiredState {
        global: global_config(),
        tx_ports: Default::default(),
        vips: addrs
            .iter()
            .map(|&(addr, flags)| DesiredVip {
                key: vip_key(addr),
                name: format!("scale-{addr}"),
                flags,
                udp_idle_timeout_ms: lb_common::DEFAULT_UDP_IDLE_TIMEOUT_MS,
                forwarding: lb_common::Forwarding::Ipip,
                gue_port: 0,
                policy: Default::default(),
                backends: bs.clone(),
            })
            .collect(),
    }
}

/// The one-VIP curves' state: [`VIP`] (connection table) and
/// [`VIP_NO_FLOWS`] (bypass), `backends` each.
pub fn pair(backends: usize) -> DesiredState {
    desired(&[(VIP, 0), (VIP_NO_FLOWS, VIP_F_NO_FLOW_TABLE)], backends)
}

/// Flow `j`'s frame: client 192.0.2.7 port 1024 + j to `vip`:80.
fn frame(vip: Ipv4Addr, j: usize, flags: u8, if_mac: [u8; 6]) -> Vec<u8> {
    let mut f = Frame::tcp(
        IpAddr::V4(CLIENT4),
        SPORT_BASE + j as u16,
        IpAddr::V4(vip),
        PORT,
        if_mac,
    );
    f.l4 = L4::Tcp { flags };
    f.payload = TCP_PAYLOAD.to_vec();
    f.build()
}

/// `v4_tcp_flow_hit` over [`FLOWS`] established flows, flow `j` to
/// `vips[j % len]` (connection-table VIPs).
pub fn flow_hit(vips: &[Ipv4Addr], if_mac: [u8; 6]) -> Scenario {
    let frames = (0..FLOWS)
        .map(|j| frame(vips[j % vips.len()], j, TCP_ACK | TCP_PSH, if_mac))
        .collect();
    balancer("v4_tcp_flow_hit", frames)
}

/// `v4_tcp_new_flow` (the Maglev path: VIPs that bypass the connection
/// table): [`FLOWS`] connections opening, flow `j` to `vips[j % len]`.
pub fn new_flow(vips: &[Ipv4Addr], if_mac: [u8; 6]) -> Scenario {
    let frames = (0..FLOWS)
        .map(|j| frame(vips[j % vips.len()], j, TCP_SYN, if_mac))
        .collect();
    balancer("v4_tcp_new_flow", frames)
}

/// `v4_tcp_flow_miss`: `count` connections the table has never seen, to
/// `vip` (lookup miss, Maglev, insert), from 198.18.0.0/15: ACKs, because a
/// bare SYN is balanced without a connection-table insert. `first` is the
/// first connection's index: each measurement needs connections no earlier
/// one created (their entries may still be in the table).
pub fn flow_miss(vip: Ipv4Addr, first: usize, count: usize, if_mac: [u8; 6]) -> Scenario {
    let frames = (first..first + count)
        .map(|i| {
            let host = (i / 50_000) as u32;
            let mut f = Frame::tcp(
                IpAddr::V4(Ipv4Addr::from(
                    u32::from(Ipv4Addr::new(198, 18, 0, 1)) + host,
                )),
                10_000 + (i % 50_000) as u16,
                IpAddr::V4(vip),
                PORT,
                if_mac,
            );
            f.l4 = L4::Tcp { flags: TCP_ACK };
            f.payload = TCP_PAYLOAD.to_vec();
            f.build()
        })
        .collect();
    Scenario {
        unique_frames: true,
        ..balancer("v4_tcp_flow_miss", frames)
    }
}

/// A balancer scenario whose connection-table counters `scale::measure`
/// checks over all of its VIPs (the per-turn check covers one VIP only).
fn balancer(name: &'static str, frames: Vec<Vec<u8>>) -> Scenario {
    Scenario {
        name,
        program: Program::Balancer,
        frames,
        unique_frames: false,
        action: XDP_TX,
        verdict: Some(lb_common::Verdict::Tx),
        vip: None,
        new_flows: NewFlows::NotApplicable,
        growth: 20,
        live: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_spread_over_every_vip_and_are_distinct() {
        let vips: Vec<Ipv4Addr> = (0..100).map(vip_addr).collect();
        let s = flow_hit(&vips, [2, 0, 0, 0, 0, 1]);
        assert_eq!(s.frames.len(), FLOWS);
        let dsts: std::collections::BTreeSet<_> = s.frames.iter().map(|f| &f[30..34]).collect();
        assert_eq!(dsts.len(), 100);
        let distinct: std::collections::BTreeSet<_> = s.frames.iter().collect();
        assert_eq!(distinct.len(), FLOWS);
        let d = desired(&[(VIP, 0)], 10_000);
        let addrs: std::collections::BTreeSet<_> =
            d.vips[0].backends.iter().map(|b| b.addr).collect();
        assert_eq!(addrs.len(), 10_000);
        assert_eq!(vip_addr(9_999), Ipv4Addr::new(10, 100, 39, 250));
    }
}
