//! Map keys and values shared by kernel and userspace, one file per map family.
//!
//! Rules for every type here: `#[repr(C)]`, no implicit padding (explicit `_pad`
//! fields, always zero, never set by callers: types are built through their
//! constructors), no `bool`/enum/`Option` fields, wire-format fields kept as
//! big-endian byte arrays so no byte-order mistake can hide in an integer.
//! Each file's `layout` tests pin size and field offsets.

mod backend;
mod clock;
mod config;
mod decap;
mod flow;
mod icmp;
mod nat;
mod policy;
mod stats;
mod vip;
mod vip_filter;
mod vip_slot;
mod vlan;

pub use backend::{Backend, BACKEND_F_ACTIVE, BACKEND_F_UNHEALTHY, NO_BACKEND};
pub use clock::ClockCache;
pub use config::{
    CachedHop, GlobalConfig, CONFIG_F_SRC_V4, CONFIG_F_SRC_V6, DEFAULT_FLOOD_THRESHOLD,
    DEFAULT_OUTER_TTL, NEXTHOP_TTL_NS,
};
pub use decap::{
    decap_stat, DecapKey, MAX_DECAP_ADDRS, MAX_DECAP_GUE_PORTS, MAX_DECAP_SOURCES, MAX_DECAP_VIPS,
};
pub use flow::{FlowKey, FlowValue};
pub use icmp::{
    IcmpBucket, DEFAULT_ICMP_RATE, ICMP_BUCKETS, ICMP_BUCKET_ECHO, ICMP_BUCKET_TOO_BIG,
};
pub use nat::{
    InvalidNatConfig, NatConfig, NatEntry, NatSession, NatStats, NatTimeouts, DEFAULT_NAT_PORT_MAX,
    DEFAULT_NAT_PORT_MIN, DEFAULT_NAT_TABLE_SIZE, MAX_NAT_SOURCES,
};
pub use policy::{
    FloodState, Gcra, PolicyStats, SourceBucketKey, SourceV4, SourceV6, VipPolicy, FLOOD_WINDOW_NS,
    MAX_POLICY_PREFIXES, MAX_RATE_SOURCES, POLICY_F_ALLOW_LIST, POLICY_F_PREFIXES,
    POLICY_F_SOURCE_RATE, POLICY_F_VIP_RATE, PREFIX_ALLOW, PREFIX_DENY, SOURCE_KEY_VIP_BITS,
};
pub use stats::{BackendStats, VipStats};
pub use vip::{
    VipInfo, VipKey, DEFAULT_UDP_IDLE_TIMEOUT_MS, MARKER_F_FRAG_TCP, MARKER_F_FRAG_UDP,
    MARKER_F_PING, VIP_F_FAIL_OPEN, VIP_F_NO_FLOW_TABLE, VIP_F_NO_PING, VIP_F_SOURCE_HASH,
};
pub use vip_filter::{vip_filter_slot, vip_filter_slot_of, VIP_FILTER_BITS, VIP_FILTER_WORDS};
pub use vip_slot::{vip_config_entries, VipSlot, NO_VIP_CONFIG};
pub use vlan::{VlanDevice, MAX_VLAN_DEVICES, TPID_8021AD, TPID_8021Q};

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
    pub const DECAP_SOURCES: &str = "XLB_DECAP_SRCS";
    pub const DECAP_VIPS: &str = "XLB_DECAP_VIPS";
    pub const DECAP_GUE_PORTS: &str = "XLB_DECAP_GUE";
    /// Packet counter of the benchmark sink program.
    pub const SINK_COUNT: &str = "XLB_SINK_COUNT";
    pub const NEXTHOPS: &str = "XLB_NEXTHOPS";
    pub const VLANS: &str = "XLB_VLANS";
    pub const POLICY: &str = "XLB_POLICY";
    pub const SRC_V4: &str = "XLB_SRC_V4";
    pub const SRC_V6: &str = "XLB_SRC_V6";
    pub const RATE_VIPS: &str = "XLB_RATE_VIPS";
    pub const RATE_SOURCES: &str = "XLB_RATE_SRCS";
    pub const POLICY_STATS: &str = "XLB_POLICY_ST";
    pub const FLOOD: &str = "XLB_FLOOD";
    pub const ICMP_LIMIT: &str = "XLB_ICMP_LIMIT";
    pub const VIP_FILTER: &str = "XLB_VIP_FILTER";
    pub const NAT_FWD: &str = "XLB_NAT_FWD";
    pub const NAT_REV: &str = "XLB_NAT_REV";
    pub const NAT_STATS: &str = "XLB_NAT_STATS";
    pub const NAT_PROG: &str = "XLB_NAT_PROG";
    pub const NAT_HANDOFF: &str = "XLB_NAT_HANDOFF";
    pub const CLOCK: &str = "XLB_CLOCK";
    /// Every VIP's key and info (`VipSlot`), by config index.
    pub const VIP_CFG: &str = "XLB_VIP_CFG";
    /// Each VIP id's config index in `XLB_VIP_CFG` (0: none), mmapable.
    pub const VIP_CFG_IX: &str = "XLB_VIP_CFG_IX";

    /// Every name above.
    pub const ALL: [&str; 34] = [
        VIPS,
        BACKENDS,
        MAGLEV,
        FLOWS,
        CONFIG,
        TX_PORTS,
        VIP_STATS,
        BACKEND_STATS,
        VERDICTS,
        DECAP_ADDRS,
        DECAP_STATS,
        DECAP_SOURCES,
        DECAP_VIPS,
        SINK_COUNT,
        NEXTHOPS,
        VLANS,
        DECAP_GUE_PORTS,
        POLICY,
        SRC_V4,
        SRC_V6,
        RATE_VIPS,
        RATE_SOURCES,
        POLICY_STATS,
        FLOOD,
        ICMP_LIMIT,
        VIP_FILTER,
        NAT_FWD,
        NAT_REV,
        NAT_STATS,
        NAT_PROG,
        NAT_HANDOFF,
        CLOCK,
        VIP_CFG,
        VIP_CFG_IX,
    ];
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
    /// Full NAT, both directions: `xlb_balancer` tail-calls it.
    pub const NAT: &str = "xlb_nat";
}

/// Default sizes; the daemon overrides them at load time from its config.
pub const DEFAULT_MAX_VIPS: u32 = 64;
pub const DEFAULT_MAX_BACKENDS: u32 = 4096;
/// Slots of a VIP's Maglev table when the config does not say (a prime).
pub const DEFAULT_TABLE_SIZE: u32 = 65537;
pub const DEFAULT_FLOW_TABLE_SIZE: u32 = 262_144;
pub const MAX_TX_PORTS: u32 = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_names_fit_the_kernel_limit() {
        for name in map_names::ALL {
            assert!(
                name.len() <= 15,
                "{name} is longer than BPF_OBJ_NAME_LEN - 1"
            );
        }
    }

    #[test]
    fn map_names_are_unique() {
        for (i, a) in map_names::ALL.iter().enumerate() {
            assert!(!map_names::ALL[i + 1..].contains(a), "{a} twice");
        }
    }
}
