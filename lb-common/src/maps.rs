//! Map keys and values shared by kernel and userspace.
//!
//! Rules for every type here: `#[repr(C)]`, no implicit padding (explicit `_pad`
//! fields, always zero), no `bool`/enum/`Option` fields, wire-format fields kept as
//! big-endian byte arrays so no byte-order mistake can hide in an integer.
//! `layout_tests` below pins size and field offsets.

/// Address family tags used in keys and values (not the kernel's AF_* numbers:
/// these are only ever compared with each other).
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Map names, as the kernel and the pin directory see them (at most 15 bytes).
pub mod map_names {
    pub const VIPS: &str = "XLB_VIPS";
    pub const BACKENDS: &str = "XLB_BACKENDS";
    pub const MAGLEV: &str = "XLB_MAGLEV";
    pub const FLOWS: &str = "XLB_FLOWS";
    pub const CONFIG: &str = "XLB_CONFIG";
    pub const TX_PORTS: &str = "XLB_TX_PORTS";
    pub const VIP_STATS: &str = "XLB_VIP_STATS";
    pub const BACKEND_STATS: &str = "XLB_BE_STATS";
    pub const VERDICTS: &str = "XLB_VERDICTS";
    pub const DECAP_ADDRS: &str = "XLB_DECAP_ADDRS";
    pub const DECAP_STATS: &str = "XLB_DECAP_STATS";
    /// Packet counter of the benchmark sink program.
    pub const SINK_COUNT: &str = "XLB_SINK_COUNT";
    pub const NEXTHOPS: &str = "XLB_NEXTHOPS";
}

/// Program names (the `#[xdp]` function names) inside the objects.
pub mod program_names {
    pub const BALANCER: &str = "xlb_balancer";
    pub const DECAP: &str = "xlb_decap";
    /// Returns XDP_PASS at once: for veth peers that must run a native XDP
    /// program to receive XDP_TX frames, and the benchmarks' lower floor.
    pub const PASS: &str = "xlb_pass";
    /// Parses Ethernet/IPv4/TCP, swaps MACs, XDP_TX: the benchmarks' floor.
    pub const FLOOR_TX: &str = "xlb_floor_tx";
    /// Counts packets in `XLB_SINK_COUNT` and drops them: benchmark sink.
    pub const COUNT_DROP: &str = "xlb_count_drop";
    /// Writes a template frame with the next source port of a cycle and
    /// XDP_TXes it: the end-to-end benchmark's live-frames traffic generator.
    pub const GEN: &str = "xlb_gen";
}

/// Default sizes; the daemon overrides them at load time from its config.
pub const DEFAULT_MAX_VIPS: u32 = 64;
pub const DEFAULT_MAX_BACKENDS: u32 = 4096;
pub const DEFAULT_TABLE_SIZE: u32 = 65537;
pub const DEFAULT_FLOW_TABLE_SIZE: u32 = 262_144;
pub const MAX_TX_PORTS: u32 = 64;
pub const MAX_DECAP_ADDRS: u32 = 64;

/// Backend id 0 is never allocated: a zeroed Maglev slot therefore means "no
/// backend", and a zeroed flow entry can never be mistaken for a real one.
pub const NO_BACKEND: u32 = 0;

/// Key of `XLB_VIPS`: one virtual service.
///
/// `addr` holds an IPv4 address in its first 4 bytes (rest zero) or a full IPv6
/// address. `port` is big-endian, `0` means "every port of this address and
/// protocol" (the data plane looks up the exact port first, then port 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VipKey {
    pub addr: [u8; 16],
    pub port: [u8; 2],
    pub proto: u8,
    pub family: u8,
}

/// `VipInfo::flags`: hash the source address only (client affinity).
pub const VIP_F_SOURCE_HASH: u32 = 1 << 0;
/// `VipInfo::flags`: never consult or fill the flow table for this VIP.
pub const VIP_F_NO_FLOW_TABLE: u32 = 1 << 1;

/// Value of `XLB_VIPS`.
///
/// The VIP's Maglev table is `XLB_MAGLEV[table_offset .. table_offset + table_size]`;
/// `table_size` is a prime chosen by the control plane, and the data plane reads
/// whatever size it is given.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipInfo {
    /// Index into `XLB_VIP_STATS`, and the owner tag stored in each backend.
    pub vip_id: u32,
    pub flags: u32,
    pub table_offset: u32,
    pub table_size: u32,
}

/// `Backend::flags`: the slot holds a live backend. Cleared slots are skipped by
/// the data plane even when a stale flow entry still points at them.
pub const BACKEND_F_ACTIVE: u8 = 1 << 0;
/// `Backend::flags`: failed its health check (kept for the daemon to re-adopt
/// after a restart; the data plane does not read it).
pub const BACKEND_F_UNHEALTHY: u8 = 1 << 1;

/// Value of `XLB_BACKENDS`, indexed by backend id. A backend belongs to exactly
/// one VIP: the same server behind two VIPs has two ids, so its stats, weight and
/// drain state are per VIP.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Backend {
    /// IPv4 in the first 4 bytes, or IPv6; the outer header's destination.
    pub addr: [u8; 16],
    /// The VIP this backend serves; a flow entry is only honoured when its
    /// backend still belongs to the VIP the packet was sent to.
    pub vip_id: u32,
    /// The weight the installed table was built with (read back on adoption).
    pub weight: u16,
    pub family: u8,
    pub flags: u8,
}

/// Key of `XLB_FLOWS`: the 5-tuple as it appears on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub proto: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}

/// Value of `XLB_FLOWS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowValue {
    pub backend_id: u32,
}

/// `GlobalConfig::flags`: `src_v4` is set (IPv4 outer headers can be built).
pub const CONFIG_F_SRC_V4: u32 = 1 << 0;
/// `GlobalConfig::flags`: `src_v6` is set (IPv6 outer headers can be built).
pub const CONFIG_F_SRC_V6: u32 = 1 << 1;

/// The single entry of `XLB_CONFIG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GlobalConfig {
    /// Outer source address for IPv6 encapsulation.
    pub src_v6: [u8; 16],
    /// Outer source address for IPv4 encapsulation.
    pub src_v4: [u8; 4],
    pub flags: u32,
}

/// How long the data plane reuses a FIB answer for a backend before asking the
/// kernel again: route and neighbour changes take effect within this time.
pub const NEXTHOP_TTL_NS: u64 = 100_000_000;

/// Per-CPU value of `XLB_NEXTHOPS`, indexed by backend id: the last FIB answer
/// toward that backend. A zeroed entry (`expires_ns` 0) is empty; the daemon
/// zeroes an id's entries whenever it (re)assigns the id, so a recycled id
/// never inherits another backend's next hop.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CachedHop {
    /// Coarse monotonic time (ns) after which the entry must be refreshed.
    pub expires_ns: u64,
    pub ifindex: u32,
    /// Largest outer packet length the FIB's MTU check accepted for this
    /// entry; longer packets ask the FIB again.
    pub checked_len: u16,
    pub _pad: [u8; 2],
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    pub _pad2: [u8; 4],
}

/// Per-CPU value of `XLB_VIP_STATS`, indexed by vip id.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipStats {
    pub packets: u64,
    pub bytes: u64,
    /// Flow-table entries created; for VIPs that bypass the flow table, TCP SYNs.
    pub new_flows: u64,
}

/// Per-CPU value of `XLB_BE_STATS`, indexed by backend id.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BackendStats {
    pub packets: u64,
    pub bytes: u64,
}

/// Key of `XLB_DECAP_ADDRS`: an outer destination the decap program accepts.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DecapKey {
    pub addr: [u8; 16],
    pub family: u8,
    pub _pad: [u8; 3],
}

/// Slots of `XLB_DECAP_STATS` (per-CPU `u64` packet counters).
pub mod decap_stat {
    /// Outer header stripped, inner packet passed up.
    pub const DECAPSULATED: u32 = 0;
    /// Not IP-in-IP for one of our addresses: passed unchanged.
    pub const PASSED: u32 = 1;
    /// IP-in-IP to us, but the inner packet is truncated or not IP: dropped.
    pub const MALFORMED: u32 = 2;
    pub const COUNT: u32 = 3;
}

impl VipKey {
    pub const fn new(addr: [u8; 16], family: u8, port: u16, proto: u8) -> Self {
        Self {
            addr,
            port: port.to_be_bytes(),
            proto,
            family,
        }
    }

    pub const fn port(&self) -> u16 {
        u16::from_be_bytes(self.port)
    }
}

impl FlowKey {
    pub const fn sport(&self) -> u16 {
        u16::from_be_bytes(self.sport)
    }

    pub const fn dport(&self) -> u16 {
        u16::from_be_bytes(self.dport)
    }
}

impl Backend {
    pub const fn is_active(&self) -> bool {
        self.flags & BACKEND_F_ACTIVE != 0
    }
}

/// Pads an IPv4 address into the 16-byte form used by keys and values.
pub const fn v4_addr16(v4: [u8; 4]) -> [u8; 16] {
    [
        v4[0], v4[1], v4[2], v4[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are `#[repr(C)]`, `Copy`, made only of integers and
    // byte arrays, and have no implicit padding (pinned by `layout_tests`).
    unsafe impl aya::Pod for VipKey {}
    unsafe impl aya::Pod for VipInfo {}
    unsafe impl aya::Pod for Backend {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowValue {}
    unsafe impl aya::Pod for GlobalConfig {}
    unsafe impl aya::Pod for VipStats {}
    unsafe impl aya::Pod for BackendStats {}
    unsafe impl aya::Pod for DecapKey {}
    unsafe impl aya::Pod for CachedHop {}
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn vip_key() {
        assert_eq!(size_of::<VipKey>(), 20);
        assert_eq!(align_of::<VipKey>(), 1);
        assert_eq!(offset_of!(VipKey, port), 16);
        assert_eq!(offset_of!(VipKey, proto), 18);
        assert_eq!(offset_of!(VipKey, family), 19);
    }

    #[test]
    fn vip_info() {
        assert_eq!(size_of::<VipInfo>(), 16);
        assert_eq!(offset_of!(VipInfo, flags), 4);
        assert_eq!(offset_of!(VipInfo, table_offset), 8);
        assert_eq!(offset_of!(VipInfo, table_size), 12);
    }

    #[test]
    fn backend() {
        assert_eq!(size_of::<Backend>(), 24);
        assert_eq!(offset_of!(Backend, vip_id), 16);
        assert_eq!(offset_of!(Backend, weight), 20);
        assert_eq!(offset_of!(Backend, family), 22);
        assert_eq!(offset_of!(Backend, flags), 23);
    }

    #[test]
    fn flow_key_and_value() {
        assert_eq!(size_of::<FlowKey>(), 40);
        assert_eq!(align_of::<FlowKey>(), 1);
        assert_eq!(offset_of!(FlowKey, dst), 16);
        assert_eq!(offset_of!(FlowKey, sport), 32);
        assert_eq!(offset_of!(FlowKey, dport), 34);
        assert_eq!(offset_of!(FlowKey, proto), 36);
        assert_eq!(offset_of!(FlowKey, family), 37);
        assert_eq!(size_of::<FlowValue>(), 4);
    }

    #[test]
    fn global_config() {
        assert_eq!(size_of::<GlobalConfig>(), 24);
        assert_eq!(offset_of!(GlobalConfig, src_v4), 16);
        assert_eq!(offset_of!(GlobalConfig, flags), 20);
    }

    #[test]
    fn stats() {
        assert_eq!(size_of::<VipStats>(), 24);
        assert_eq!(offset_of!(VipStats, new_flows), 16);
        assert_eq!(size_of::<BackendStats>(), 16);
    }

    #[test]
    fn next_hop() {
        assert_eq!(size_of::<CachedHop>(), 32);
        assert_eq!(align_of::<CachedHop>(), 8);
        assert_eq!(offset_of!(CachedHop, ifindex), 8);
        assert_eq!(offset_of!(CachedHop, checked_len), 12);
        assert_eq!(offset_of!(CachedHop, smac), 16);
        assert_eq!(offset_of!(CachedHop, dmac), 22);
    }

    #[test]
    fn decap_key() {
        assert_eq!(size_of::<DecapKey>(), 20);
        assert_eq!(offset_of!(DecapKey, family), 16);
    }

    #[test]
    fn map_names_fit_the_kernel_limit() {
        for name in [
            map_names::VIPS,
            map_names::BACKENDS,
            map_names::MAGLEV,
            map_names::FLOWS,
            map_names::CONFIG,
            map_names::TX_PORTS,
            map_names::VIP_STATS,
            map_names::BACKEND_STATS,
            map_names::VERDICTS,
            map_names::DECAP_ADDRS,
            map_names::DECAP_STATS,
            map_names::SINK_COUNT,
            map_names::NEXTHOPS,
        ] {
            assert!(
                name.len() <= 15,
                "{name} is longer than BPF_OBJ_NAME_LEN - 1"
            );
        }
    }

    #[test]
    fn vip_key_port_is_big_endian() {
        let k = VipKey::new(v4_addr16([10, 0, 0, 1]), FAMILY_V4, 443, PROTO_TCP);
        assert_eq!(k.port, [0x01, 0xbb]);
        assert_eq!(k.port(), 443);
    }
}
