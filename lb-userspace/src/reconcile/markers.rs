//! The address markers' values: for each VIP address, what the data plane
//! does with its traffic that carries no ports (`lb_common::decision`
//! reads them): whether it answers pings, and which VIP takes its TCP and
//! UDP fragments.
//!
//! Fragments of one protocol to an address go to the address's VIP of that
//! protocol when it is the only one and it hashes the source address
//! ([`fragment_owner`]): a later fragment carries no ports, so the source
//! address is all there is to place it by, and with a second VIP of the
//! protocol on the address nothing says which one a fragment is for.

use std::collections::BTreeMap;

use lb_common::{VipInfo, VipKey, PROTO_TCP, PROTO_UDP, VIP_F_NO_PING, VIP_F_SOURCE_HASH};

use super::DesiredVip;

/// Who takes the fragments of one protocol sent to one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentOwner {
    /// The VIP at this port (0: every port), which hashes the source
    /// address.
    Vip { port: u16 },
    /// The address has no VIP of the protocol.
    NoVip,
    /// Its only VIP of the protocol hashes the 5-tuple: later fragments
    /// could not follow the first.
    FiveTuple { port: u16 },
    /// It has several VIPs of the protocol (the ports listed).
    Ambiguous { ports: [u16; 2] },
}

/// The owner of the fragments among an address's VIPs of one protocol,
/// given as (port, hashes the source address).
pub fn fragment_owner(vips: impl IntoIterator<Item = (u16, bool)>) -> FragmentOwner {
    let mut vips = vips.into_iter();
    let Some((port, source_hash)) = vips.next() else {
        return FragmentOwner::NoVip;
    };
    if let Some((second, _)) = vips.next() {
        return FragmentOwner::Ambiguous {
            ports: [port, second],
        };
    }
    if source_hash {
        FragmentOwner::Vip { port }
    } else {
        FragmentOwner::FiveTuple { port }
    }
}

/// Every VIP address's marker key and value for the VIPs `vips`: ping
/// answered when at least one VIP of the address allows it; fragments as
/// [`fragment_owner`] says.
pub fn marker_values(vips: &[&DesiredVip]) -> BTreeMap<VipKey, VipInfo> {
    let mut by_addr: BTreeMap<VipKey, Vec<&DesiredVip>> = BTreeMap::new();
    for v in vips {
        by_addr.entry(v.key.to_marker()).or_default().push(v);
    }
    by_addr
        .into_iter()
        .map(|(marker, vips)| {
            let ping = vips.iter().any(|v| v.flags & VIP_F_NO_PING == 0);
            let owner = |proto| {
                let of_proto = vips.iter().filter(|v| v.key.proto() == proto);
                match fragment_owner(
                    of_proto.map(|v| (v.key.port(), v.flags & VIP_F_SOURCE_HASH != 0)),
                ) {
                    FragmentOwner::Vip { port } => Some(port),
                    _ => None,
                }
            };
            let info = VipInfo::marker(ping, owner(PROTO_TCP), owner(PROTO_UDP));
            (marker, info)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(addr: &str, port: u16, proto: u8, flags: u32) -> DesiredVip {
        DesiredVip {
            key: VipKey::new(addr.parse().expect("address"), port, proto),
            name: format!("{addr}:{port}"),
            flags,
            udp_idle_timeout_ms: 30_000,
            forwarding: lb_common::Forwarding::Ipip,
            gue_port: 0,
            backends: Vec::new(),
            policy: crate::reconcile::DesiredPolicy::default(),
        }
    }

    #[test]
    fn fragment_owners() {
        assert_eq!(fragment_owner([]), FragmentOwner::NoVip);
        assert_eq!(
            fragment_owner([(53, true)]),
            FragmentOwner::Vip { port: 53 }
        );
        assert_eq!(
            fragment_owner([(0, false)]),
            FragmentOwner::FiveTuple { port: 0 }
        );
        assert_eq!(
            fragment_owner([(53, true), (123, false)]),
            FragmentOwner::Ambiguous { ports: [53, 123] }
        );
        assert_eq!(
            fragment_owner([(80, true), (443, true)]),
            FragmentOwner::Ambiguous { ports: [80, 443] }
        );
    }

    #[test]
    fn markers_say_ping_and_fragment_owners() {
        let vips = [
            vip("10.0.0.1", 53, PROTO_UDP, VIP_F_SOURCE_HASH | VIP_F_NO_PING),
            vip("10.0.0.1", 80, PROTO_TCP, VIP_F_NO_PING),
            vip("10.0.0.2", 0, PROTO_TCP, VIP_F_SOURCE_HASH),
            vip("10.0.0.3", 80, PROTO_TCP, VIP_F_SOURCE_HASH | VIP_F_NO_PING),
            vip("10.0.0.3", 443, PROTO_TCP, VIP_F_SOURCE_HASH),
        ];
        let refs: Vec<&DesiredVip> = vips.iter().collect();
        let m = marker_values(&refs);
        let at = |a: &str| m[&VipKey::marker(a.parse().expect("address"))];
        assert_eq!(at("10.0.0.1"), VipInfo::marker(false, None, Some(53)));
        assert_eq!(at("10.0.0.2"), VipInfo::marker(true, Some(0), None));
        assert_eq!(
            at("10.0.0.3"),
            VipInfo::marker(true, None, None),
            "two TCP VIPs: ambiguous; one allows ping"
        );
        assert_eq!(m.len(), 3);
    }
}
