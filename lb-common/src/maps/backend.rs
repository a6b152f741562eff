//! `XLB_BACKENDS`: backends by id.

use core::net::IpAddr;

use crate::ip::{from_addr16, to_addr16};

/// Backend id 0 is never allocated: a zeroed Maglev slot therefore means "no
/// backend", and a zeroed flow entry can never be mistaken for a real one.
pub const NO_BACKEND: u32 = 0;

/// `Backend::flags`: the slot holds a live backend. Cleared slots are skipped by
/// the data plane even when a stale flow entry still points at them.
pub const BACKEND_F_ACTIVE: u8 = 1 << 0;
/// `Backend::flags`: failed its health check (kept for the daemon to re-adopt
/// after a restart; the data plane does not read it).
pub const BACKEND_F_UNHEALTHY: u8 = 1 << 1;

/// Value of `XLB_BACKENDS`, indexed by backend id. A backend belongs to exactly
/// one VIP: the same server behind two VIPs has two ids, so its stats, weight and
/// drain state are per VIP. A cleared slot is `Backend::default()`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Backend {
    /// IPv4 in the first 4 bytes, or IPv6; the outer header's destination.
    addr: [u8; 16],
    /// The VIP this backend serves; a flow entry is only honoured when its
    /// backend still belongs to the VIP the packet was sent to.
    pub vip_id: u32,
    /// The weight the installed table was built with (read back on adoption).
    pub weight: u16,
    family: u8,
    /// `BACKEND_F_*`.
    pub flags: u8,
}

impl Backend {
    /// An active backend at `addr` serving VIP `vip_id`.
    pub const fn new(addr: IpAddr, vip_id: u32, weight: u16, healthy: bool) -> Self {
        let (addr, family) = to_addr16(addr);
        Self {
            addr,
            vip_id,
            weight,
            family,
            flags: BACKEND_F_ACTIVE | if healthy { 0 } else { BACKEND_F_UNHEALTHY },
        }
    }

    pub fn addr(&self) -> IpAddr {
        from_addr16(&self.addr, self.family)
    }

    /// The address in its 16-byte form (the outer header's destination).
    #[inline(always)]
    pub const fn addr16(&self) -> &[u8; 16] {
        &self.addr
    }

    pub const fn family(&self) -> u8 {
        self.family
    }

    pub const fn is_active(&self) -> bool {
        self.flags & BACKEND_F_ACTIVE != 0
    }

    /// As last recorded by the daemon (adoption reads it back).
    pub const fn is_healthy(&self) -> bool {
        self.flags & BACKEND_F_UNHEALTHY == 0
    }
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, integers and byte arrays only, no implicit
// padding (pinned by `layout` below).
unsafe impl aya::Pod for Backend {}

#[cfg(test)]
mod layout {
    use core::mem::{offset_of, size_of};

    use super::*;
    use crate::ip::FAMILY_V6;

    #[test]
    fn backend() {
        assert_eq!(size_of::<Backend>(), 24);
        assert_eq!(offset_of!(Backend, vip_id), 16);
        assert_eq!(offset_of!(Backend, weight), 20);
        assert_eq!(offset_of!(Backend, family), 22);
        assert_eq!(offset_of!(Backend, flags), 23);
    }

    #[test]
    fn constructor() {
        let a = IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 0x12]);
        let b = Backend::new(a, 3, 200, false);
        assert_eq!(
            (b.addr(), b.vip_id, b.weight, b.family()),
            (a, 3, 200, FAMILY_V6)
        );
        assert!(b.is_active() && !b.is_healthy());
        assert!(Backend::new(a, 3, 200, true).is_healthy());
        assert!(!Backend::default().is_active());
    }
}
