//! Per-CPU counters: `XLB_VIP_STATS` (by vip id) and `XLB_BE_STATS` (by
//! backend id).

/// Per-CPU value of `XLB_VIP_STATS`, indexed by vip id.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipStats {
    pub packets: u64,
    pub bytes: u64,
    /// New connections: TCP SYNs without ACK that were balanced (they leave
    /// no connection-table entry: the handshake's ACK creates it), and UDP
    /// flow-table entries created for flows that had none (a replaced entry
    /// is not counted).
    pub new_flows: u64,
}

/// Per-CPU value of `XLB_BE_STATS`, indexed by backend id.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BackendStats {
    pub packets: u64,
    pub bytes: u64,
}

impl core::ops::Add for VipStats {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            packets: self.packets + o.packets,
            bytes: self.bytes + o.bytes,
            new_flows: self.new_flows + o.new_flows,
        }
    }
}

impl core::ops::Add for BackendStats {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            packets: self.packets + o.packets,
            bytes: self.bytes + o.bytes,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, integers only, no implicit padding (pinned by
// `layout` below).
unsafe impl aya::Pod for VipStats {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for BackendStats {}

#[cfg(test)]
mod layout {
    use core::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn stats() {
        assert_eq!(size_of::<VipStats>(), 24);
        assert_eq!(offset_of!(VipStats, new_flows), 16);
        assert_eq!(size_of::<BackendStats>(), 16);
    }
}
