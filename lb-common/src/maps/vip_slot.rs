//! `XLB_VIP_CFG` and `XLB_VIP_CFG_IX`: every VIP by its id, with its key,
//! reached without a hash lookup and never read half-updated.
//!
//! A packet of an established flow finds its connection-table entry, the
//! entry its backend, the backend its VIP's id (`Backend::vip_id`); the id's
//! element of `XLB_VIP_CFG_IX` holds the index of the VIP's [`VipSlot`] in
//! `XLB_VIP_CFG`: the VIP in inline array reads instead of a hash lookup of
//! the 20-byte VIP key (`XLB_VIPS`) or of the id. The slot's key says
//! whether that VIP is the one the lookup would have found
//! ([`VipSlot::is_exact_vip_of`]); when it is not, the packet looks its VIP
//! up in `XLB_VIPS` as every other packet does.
//!
//! A slot is never rewritten while a packet may read it. Userspace writes a
//! changed VIP into a free index, then points the id at it with one aligned
//! 8-byte store through the index map's shared mapping (a packet reads the
//! old index or the new one, and the slot behind either is complete: the
//! slot's address depends on the index read). The old index is reused only
//! after an RCU grace period, when no XDP run that read it can still be
//! running. Userspace writes a VIP's slot before its `XLB_VIPS` entry and
//! points the id away from it before removing the entry, so a slot never
//! names a VIP the map has lost. Index [`NO_VIP_CONFIG`] is never handed
//! out: its slot stays all zero, the exact VIP of no packet.

use super::{
    flow::FlowKey,
    vip::{VipInfo, VipKey},
};

/// The config index of a VIP id without one (`XLB_VIP_CFG_IX`'s zero).
pub const NO_VIP_CONFIG: u32 = 0;

/// Elements of `XLB_VIP_CFG` for `max_vips` VIP ids: one per id in use, as
/// many again for the indexes retired and waiting for a grace period, and
/// the unused [`NO_VIP_CONFIG`].
pub const fn vip_config_entries(max_vips: u32) -> Option<u32> {
    match max_vips.checked_mul(2) {
        Some(n) => n.checked_add(1),
        None => None,
    }
}

/// Value of `XLB_VIP_CFG`, by config index: the VIP's key and its
/// `XLB_VIPS` value.
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

    #[test]
    fn config_entries_leave_room_for_every_id_twice_and_the_empty_index() {
        assert_eq!(vip_config_entries(1), Some(3));
        assert_eq!(vip_config_entries(4096), Some(8193));
        assert_eq!(vip_config_entries(u32::MAX / 2), Some(u32::MAX));
        assert_eq!(vip_config_entries(u32::MAX / 2 + 1), None);
    }

    /// The slot behind index `NO_VIP_CONFIG` is all zero and serves no
    /// packet: a VIP id without a config falls back to the lookup.
    #[test]
    fn the_empty_slot_serves_no_flow() {
        // SAFETY: VipSlot is integers and byte arrays: all-zero is valid.
        let empty: VipSlot = unsafe { core::mem::zeroed() };
        for f in [
            flow([0, 0, 0, 0], 0, 0),
            flow([10, 100, 0, 1], 80, PROTO_TCP),
        ] {
            assert!(!empty.is_exact_vip_of(&f));
        }
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
