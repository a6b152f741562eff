//! `XLB_VLANS`: the balancer host's VLAN devices, by ifindex. `bpf_fib_lookup`
//! names the egress device of a route but says nothing about VLANs, so the
//! daemon records every VLAN device (from netlink) and the data plane looks
//! the FIB's egress up here (see [`crate::decision::egress`]).

/// Entries of `XLB_VLANS`: VLAN devices of the host (4094 ids per parent; a
/// host with more VLAN devices is refused none, but the extra ones are not
/// known to the data plane, see the README).
pub const MAX_VLAN_DEVICES: u32 = 4096;

/// 802.1Q and 802.1ad tag protocol identifiers.
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

/// Value of `XLB_VLANS`: where a VLAN device sits and which tag it carries.
/// [`VlanDevice::NONE`] (all zero) is "not a VLAN device", the state of a
/// next-hop cache entry whose egress is an ordinary device.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VlanDevice {
    /// The device the VLAN device sits on; 0 when that device is in another
    /// network namespace (then no ingress interface matches it).
    pub parent_ifindex: u32,
    /// VLAN id (12 bits), big-endian as in the tag.
    vlan_id: [u8; 2],
    /// Tag protocol (0x8100 or 0x88a8), big-endian; 0 for `NONE`.
    tpid: [u8; 2],
}

impl VlanDevice {
    /// Not a VLAN device.
    pub const NONE: Self = Self {
        parent_ifindex: 0,
        vlan_id: [0; 2],
        tpid: [0; 2],
    };

    /// A VLAN device with id `vlan_id` (only its 12 low bits count) and tag
    /// protocol `tpid` on device `parent_ifindex`.
    pub const fn new(parent_ifindex: u32, vlan_id: u16, tpid: u16) -> Self {
        Self {
            parent_ifindex,
            vlan_id: (vlan_id & 0x0fff).to_be_bytes(),
            tpid: tpid.to_be_bytes(),
        }
    }

    pub const fn vlan_id(&self) -> u16 {
        u16::from_be_bytes(self.vlan_id)
    }

    pub const fn tpid(&self) -> u16 {
        u16::from_be_bytes(self.tpid)
    }

    /// Whether this describes a VLAN device (not [`VlanDevice::NONE`]).
    #[inline(always)]
    pub const fn is_vlan(&self) -> bool {
        self.tpid[0] != 0 || self.tpid[1] != 0
    }

    /// Whether a frame tagged `tpid` (host order) / `tci` (as on the wire)
    /// is on this device's VLAN. The TCI's priority and DEI bits do not
    /// matter.
    #[inline(always)]
    pub const fn carries(&self, tpid: u16, tci: [u8; 2]) -> bool {
        self.is_vlan()
            && u16::from_be_bytes(self.tpid) == tpid
            && tci[0] & 0x0f == self.vlan_id[0]
            && tci[1] == self.vlan_id[1]
    }
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, integers and byte arrays only, no implicit
// padding (pinned by `layout` below).
unsafe impl aya::Pod for VlanDevice {}

#[cfg(test)]
mod layout {
    use core::mem::{align_of, offset_of, size_of};

    use super::*;

    #[test]
    fn vlan_device() {
        assert_eq!(size_of::<VlanDevice>(), 8);
        assert_eq!(align_of::<VlanDevice>(), 4);
        assert_eq!(offset_of!(VlanDevice, vlan_id), 4);
        assert_eq!(offset_of!(VlanDevice, tpid), 6);
        assert_eq!(VlanDevice::default(), VlanDevice::NONE);
    }

    #[test]
    fn tags() {
        let d = VlanDevice::new(7, 100, TPID_8021Q);
        assert_eq!((d.parent_ifindex, d.vlan_id(), d.tpid()), (7, 100, 0x8100));
        assert_eq!(d.vlan_id, [0x00, 0x64]);
        assert!(d.is_vlan() && !VlanDevice::NONE.is_vlan());
        // Priority 5, DEI set, id 100: still VLAN 100.
        assert!(d.carries(TPID_8021Q, [0xb0, 0x64]));
        assert!(!d.carries(TPID_8021Q, [0x00, 0x65]));
        assert!(!d.carries(TPID_8021AD, [0x00, 0x64]));
        assert!(!VlanDevice::NONE.carries(0, [0, 0]));
        let big = VlanDevice::new(7, 4094, TPID_8021AD);
        assert!(big.carries(TPID_8021AD, [0x0f, 0xfe]));
        assert_eq!(VlanDevice::new(7, 0xf064, TPID_8021Q).vlan_id(), 100);
    }
}
