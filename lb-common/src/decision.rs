//! The balancer's decisions, as pure functions that the XDP program and
//! userspace (`xlb explain`, tests) both call: which VIP a packet is for,
//! which hash picks its slot, which slot, and whether a connection-table
//! entry may be followed. Map lookups are passed in as closures, so the same
//! rule runs against the kernel's maps (in XDP) or the pinned maps read from
//! userspace.

use crate::{
    flow_hash::{flow_hash, source_hash},
    maps::{Backend, FlowKey, VipInfo, VipKey, NO_BACKEND, VIP_F_NO_FLOW_TABLE, VIP_F_SOURCE_HASH},
};

/// The VIP a packet is for: the exact (address, port, protocol) first, then
/// the address's port-0 VIP. `key` must be [`VipKey::of_flow`] of the packet
/// (built in place by the data plane); it is left as the last key tried.
#[inline(always)]
pub fn lookup_vip<V>(key: &mut VipKey, mut get: impl FnMut(&VipKey) -> Option<V>) -> Option<V> {
    if let Some(v) = get(key) {
        return Some(v);
    }
    key.set_any_port();
    get(key)
}

/// Whether a packet without usable ports (a fragment) is addressed to a VIP
/// address: then it is ours to drop, else it passes. `key` must be
/// [`VipKey::of_flow`] of the packet; it is turned into the address marker.
#[inline(always)]
pub fn is_vip_address<V>(key: &mut VipKey, mut get: impl FnMut(&VipKey) -> Option<V>) -> bool {
    key.set_to_marker();
    get(key).is_some()
}

/// The flow hash a VIP's packets are balanced by: the source address alone
/// (client affinity) or the 5-tuple.
#[inline(always)]
pub const fn vip_hash(vip_flags: u32, key: &FlowKey) -> u32 {
    if vip_flags & VIP_F_SOURCE_HASH != 0 {
        source_hash(key)
    } else {
        flow_hash(key)
    }
}

/// The `XLB_MAGLEV` slot (index over all VIPs' tables) that `hash` picks in
/// the VIP's table, or `None` when the VIP has no usable backend.
#[inline(always)]
pub const fn maglev_slot(vip: &VipInfo, hash: u32) -> Option<u32> {
    if vip.table_size == 0 {
        return None;
    }
    Some(vip.table_offset + hash % vip.table_size)
}

/// Whether the VIP's packets consult and fill the connection table.
#[inline(always)]
pub const fn uses_flow_table(vip_flags: u32) -> bool {
    vip_flags & VIP_F_NO_FLOW_TABLE == 0
}

/// Whether backend slot `id` (holding `backend`) may take a packet for VIP
/// `vip_id`. Ids are recycled by the daemon, so neither a stale
/// connection-table entry nor a table slot is trusted blindly: the slot must
/// be in use and belong to this VIP.
#[inline(always)]
pub const fn is_live_backend(id: u32, backend: &Backend, vip_id: u32) -> bool {
    id != NO_BACKEND && backend.is_active() && backend.vip_id == vip_id
}

/// Whether a connection-table entry naming backend slot `id` (holding
/// `backend`) is followed for a packet to VIP `vip_id`; otherwise the packet
/// goes through the VIP's table (and the entry is replaced).
#[inline(always)]
pub const fn follows_flow_entry(id: u32, backend: &Backend, vip_id: u32) -> bool {
    is_live_backend(id, backend, vip_id)
}

#[cfg(test)]
mod tests {
    use core::net::IpAddr;

    use super::*;
    use crate::maps::PROTO_TCP;

    fn flow(dport: u16) -> FlowKey {
        FlowKey::new(
            IpAddr::from([192, 0, 2, 1]),
            40000,
            IpAddr::from([10, 100, 0, 1]),
            dport,
            PROTO_TCP,
        )
        .expect("same family")
    }

    #[test]
    fn exact_port_before_port_zero() {
        let vip = IpAddr::from([10, 100, 0, 1]);
        let exact = VipKey::new(vip, 80, PROTO_TCP);
        let any = VipKey::new(vip, 0, PROTO_TCP);
        let both = |k: &VipKey| (*k == exact || *k == any).then_some(*k);
        assert_eq!(
            lookup_vip(&mut VipKey::of_flow(&flow(80)), both),
            Some(exact)
        );
        assert_eq!(lookup_vip(&mut VipKey::of_flow(&flow(81)), both), Some(any));
        let only_exact = |k: &VipKey| (*k == exact).then_some(*k);
        assert_eq!(
            lookup_vip(&mut VipKey::of_flow(&flow(81)), only_exact),
            None
        );
    }

    #[test]
    fn address_markers() {
        let marker = VipKey::marker(IpAddr::from([10, 100, 0, 1]));
        let get = |k: &VipKey| (*k == marker).then_some(());
        assert!(is_vip_address(&mut VipKey::of_flow(&flow(9)), get));
        let other = FlowKey::new(
            IpAddr::from([192, 0, 2, 1]),
            1,
            IpAddr::from([10, 100, 0, 2]),
            9,
            PROTO_TCP,
        )
        .expect("same family");
        assert!(!is_vip_address(&mut VipKey::of_flow(&other), get));
    }

    #[test]
    fn hash_follows_the_vip_flag() {
        let k = flow(80);
        assert_eq!(vip_hash(0, &k), flow_hash(&k));
        assert_eq!(vip_hash(VIP_F_SOURCE_HASH, &k), source_hash(&k));
    }

    #[test]
    fn slots_stay_inside_the_vip_table() {
        let vip = VipInfo::new(2, 0, 2 * 7, 7);
        for h in [0, 1, 6, 7, 8, u32::MAX] {
            let s = maglev_slot(&vip, h).expect("has a table");
            assert!((14..21).contains(&s), "{h} -> {s}");
            assert_eq!(s, 14 + h % 7);
        }
        assert_eq!(maglev_slot(&VipInfo::new(2, 0, 14, 0), 5), None);
    }

    #[test]
    fn live_backends() {
        let b = Backend::new(IpAddr::from([10, 0, 0, 11]), 3, 100, true);
        assert!(is_live_backend(5, &b, 3));
        assert!(!is_live_backend(5, &b, 4), "another VIP's backend");
        assert!(
            !is_live_backend(NO_BACKEND, &b, 3),
            "id 0 is never a backend"
        );
        assert!(
            !is_live_backend(5, &Backend::default(), 0),
            "a cleared slot"
        );
        assert!(follows_flow_entry(5, &b, 3));
        assert!(uses_flow_table(VIP_F_SOURCE_HASH));
        assert!(!uses_flow_table(VIP_F_NO_FLOW_TABLE));
    }
}
