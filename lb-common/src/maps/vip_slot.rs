//! `XLB_VIP_SLOTS`: every VIP by its id, with its key.
//!
//! A packet of an established flow finds its connection-table entry, the
//! entry its backend, the backend its VIP's id (`Backend::vip_id`), and the
//! id this slot: the VIP in two array reads instead of a hash lookup of the
//! 20-byte VIP key (`XLB_VIPS`). The slot's key says whether that VIP is the
//! one the lookup would have found ([`VipSlot::is_exact_vip_of`]); when it is
//! not, the packet looks its VIP up in `XLB_VIPS` as every other packet does.
//! Userspace writes a VIP's slot before its `XLB_VIPS` entry and removes it
//! before removing the entry, so a slot never names a VIP the map has lost;
//! the map is a hash map without preallocation, so a slot is replaced whole
//! (RCU) and a packet never reads half of an update.

use super::{
    flow::FlowKey,
    vip::{VipInfo, VipKey},
};

/// Value of `XLB_VIP_SLOTS`, by VIP id: the VIP's key and its `XLB_VIPS`
/// value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipSlot {
    pub key: VipKey,
    pub info: VipInfo,
}

impl VipSlot {
    pub const fn new(key: VipKey, info: VipInfo) -> Self {
        Self { key, info }
    }

    /// Whether this slot's VIP is the one `XLB_VIPS` gives `flow`'s packets
    /// first: the exact (address, port, protocol, family) of its
    /// destination. A port-0 VIP never is: an exact VIP added later on its
    /// address would win the lookup (`decision::lookup_vip`), so its
    /// packets look it up.
    #[inline(always)]
    pub fn is_exact_vip_of(&self, flow: &FlowKey) -> bool {
        self.key.serves_exactly(flow)
    }
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, integers and byte arrays only, no implicit
// padding (pinned by `layout` below).
unsafe impl aya::Pod for VipSlot {}

#[cfg(test)]
mod tests {
    use core::{
        mem::{align_of, offset_of, size_of},
        net::IpAddr,
    };

    use super::*;
    use crate::maps::{PROTO_TCP, PROTO_UDP};

    #[test]
    fn layout() {
        assert_eq!(size_of::<VipSlot>(), 48);
        assert_eq!(align_of::<VipSlot>(), 4);
        assert_eq!(offset_of!(VipSlot, key), 0);
        assert_eq!(offset_of!(VipSlot, info), 20);
    }

    fn flow(dst: [u8; 4], dport: u16, proto: u8) -> FlowKey {
        FlowKey::new(
            IpAddr::from([192, 0, 2, 1]),
            40_000,
            IpAddr::from(dst),
            dport,
            proto,
        )
        .expect("same family")
    }

    #[test]
    fn a_slot_serves_only_its_exact_destination() {
        let vip = [10, 100, 0, 1];
        let slot = VipSlot::new(
            VipKey::new(IpAddr::from(vip), 80, PROTO_TCP),
            VipInfo::new(3, 0, 0, 7),
        );
        assert!(slot.is_exact_vip_of(&flow(vip, 80, PROTO_TCP)));
        assert!(!slot.is_exact_vip_of(&flow(vip, 81, PROTO_TCP)), "port");
        assert!(!slot.is_exact_vip_of(&flow(vip, 80, PROTO_UDP)), "protocol");
        assert!(
            !slot.is_exact_vip_of(&flow([10, 100, 0, 2], 80, PROTO_TCP)),
            "address"
        );
        // a64:1:: begins with the bytes of 10.100.0.1; the family tells
        // them apart.
        let v6 = FlowKey::new(
            "2001:db8::1".parse().expect("v6"),
            40_000,
            "a64:1::".parse().expect("v6"),
            80,
            PROTO_TCP,
        )
        .expect("same family");
        assert!(!slot.is_exact_vip_of(&v6), "family");
    }

    #[test]
    fn a_port_0_vip_serves_no_flow_of_another_port() {
        let vip = [10, 100, 0, 1];
        let any_port = VipSlot::new(
            VipKey::new(IpAddr::from(vip), 0, PROTO_TCP),
            VipInfo::new(3, 0, 0, 7),
        );
        assert!(!any_port.is_exact_vip_of(&flow(vip, 80, PROTO_TCP)));
        // A packet to port 0 itself: the exact lookup finds this VIP too.
        assert!(any_port.is_exact_vip_of(&flow(vip, 0, PROTO_TCP)));
    }
}
