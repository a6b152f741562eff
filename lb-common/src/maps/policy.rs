//! The per-VIP access and rate policy: `XLB_POLICY` (one record per vip
//! id), the source-prefix tries `XLB_SRC_V4`/`XLB_SRC_V6`, the rate-limit
//! state `XLB_RATE_VIPS`/`XLB_RATE_SRCS`, the drop counters
//! `XLB_POLICY_STATS`, and flood mode's per-CPU state `XLB_FLOOD`.

use core::net::IpAddr;

use crate::{bytes, ip::to_addr16, maps::FlowKey};

/// `VipPolicy::flags`: the trie holds prefixes of this VIP (without it the
/// data plane skips the lookup).
pub const POLICY_F_PREFIXES: u32 = 1 << 0;
/// `VipPolicy::flags`: the VIP has an allow list: a source that matches no
/// allow prefix is refused.
pub const POLICY_F_ALLOW_LIST: u32 = 1 << 1;
/// `VipPolicy::flags`: new connections are limited per VIP.
pub const POLICY_F_VIP_RATE: u32 = 1 << 2;
/// `VipPolicy::flags`: new connections are limited per source prefix.
pub const POLICY_F_SOURCE_RATE: u32 = 1 << 3;

/// Value of a source-trie entry: the prefix is allowed.
pub const PREFIX_ALLOW: u32 = 1;
/// Value of a source-trie entry: the prefix is denied.
pub const PREFIX_DENY: u32 = 2;

/// Entries of each source trie (all VIPs together).
pub const MAX_POLICY_PREFIXES: u32 = 65_536;
/// Per-source rate-limit buckets (all VIPs together; least recently used
/// buckets are evicted, which only forgets that a source was limited).
pub const MAX_RATE_SOURCES: u32 = 65_536;

/// Flood mode counts connection-table misses in windows of this length; a
/// CPU is flooding while its current window saw more misses than its share
/// of the threshold (`threshold / 10`, rounded up).
pub const FLOOD_WINDOW_NS: u64 = 100_000_000;

/// The value of `XLB_POLICY`, indexed by vip id. All zero: no policy.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipPolicy {
    /// `POLICY_F_*`.
    pub flags: u32,
    /// Prefix length that groups sources into one per-source bucket (of
    /// the VIP's family).
    pub source_prefix: u8,
    _pad: [u8; 3],
    /// `source_prefix` as a mask over the 16-byte address form: the data
    /// plane masks with plain ANDs (a loop over the length would branch on
    /// it per byte, and the verifier would walk the rest of the fast path
    /// once per possible length).
    source_mask: [u8; 16],
    /// Changes (to a value never used before) whenever the VIP's source
    /// prefixes or allow list change, after the tries hold the new ones;
    /// 0: flows are checked on every packet. A flow-table entry remembers
    /// the generation its source was last allowed under
    /// (`FlowValue::access_generation`), so an established flow's packets
    /// pay the trie lookup once per change instead of once per packet.
    pub access_generation: u32,
    _pad2: [u8; 4],
    /// The VIP's bucket, as GCRA parameters (see `crate::policy::gcra`).
    pub vip_rate: Gcra,
    /// Each source prefix's bucket.
    pub source_rate: Gcra,
}

/// A token bucket in the form of the generic cell rate algorithm: one
/// admission every `interval_ns` on average, `tolerance_ns` of credit
/// (`(burst - 1) x interval`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Gcra {
    pub interval_ns: u64,
    pub tolerance_ns: u64,
}

impl Gcra {
    /// `per_second` admissions per second (at least 1) with bursts of up to
    /// `burst` (at least 1) at once.
    pub const fn new(per_second: u32, burst: u32) -> Self {
        let per_second = if per_second == 0 { 1 } else { per_second };
        let burst = if burst == 0 { 1 } else { burst };
        let interval_ns = 1_000_000_000 / per_second as u64;
        Self {
            interval_ns,
            tolerance_ns: (burst as u64 - 1) * interval_ns,
        }
    }

    /// Admissions per second (rounded).
    pub const fn per_second(&self) -> u64 {
        match (1_000_000_000 + self.interval_ns / 2).checked_div(self.interval_ns) {
            Some(n) => n,
            None => 0,
        }
    }

    /// The burst this bucket was built with.
    pub const fn burst(&self) -> u64 {
        match self.tolerance_ns.checked_div(self.interval_ns) {
            Some(n) => n + 1,
            None => 0,
        }
    }
}

impl VipPolicy {
    /// No prefixes, no limits.
    pub const NONE: Self = Self {
        flags: 0,
        source_prefix: 0,
        _pad: [0; 3],
        source_mask: [0; 16],
        access_generation: 0,
        _pad2: [0; 4],
        vip_rate: Gcra {
            interval_ns: 0,
            tolerance_ns: 0,
        },
        source_rate: Gcra {
            interval_ns: 0,
            tolerance_ns: 0,
        },
    };

    /// Source prefixes: `prefixes` when the tries hold entries for the VIP,
    /// `allow_list` when it has an allow list.
    pub const fn with_prefixes(self, prefixes: bool, allow_list: bool) -> Self {
        let mut flags = self.flags & !(POLICY_F_PREFIXES | POLICY_F_ALLOW_LIST);
        if prefixes {
            flags |= POLICY_F_PREFIXES;
        }
        if allow_list {
            flags |= POLICY_F_ALLOW_LIST;
        }
        Self { flags, ..self }
    }

    /// The record with access generation `generation`.
    pub const fn with_access_generation(self, generation: u32) -> Self {
        Self {
            access_generation: generation,
            ..self
        }
    }

    /// At most `rate` new connections to the VIP.
    pub const fn with_vip_rate(self, rate: Gcra) -> Self {
        Self {
            flags: self.flags | POLICY_F_VIP_RATE,
            vip_rate: rate,
            ..self
        }
    }

    /// At most `rate` new connections from each source prefix of length
    /// `prefix_len` (of the VIP's family: at most 32 for IPv4, 128 for IPv6).
    pub fn with_source_rate(self, rate: Gcra, prefix_len: u8) -> Self {
        let mut source_mask = [0xff; 16];
        crate::policy::mask_prefix(&mut source_mask, prefix_len);
        Self {
            flags: self.flags | POLICY_F_SOURCE_RATE,
            source_prefix: prefix_len,
            source_mask,
            source_rate: rate,
            ..self
        }
    }

    #[inline(always)]
    pub const fn has_prefixes(&self) -> bool {
        self.flags & POLICY_F_PREFIXES != 0
    }

    #[inline(always)]
    pub const fn has_allow_list(&self) -> bool {
        self.flags & POLICY_F_ALLOW_LIST != 0
    }

    #[inline(always)]
    pub const fn limits_vip(&self) -> bool {
        self.flags & POLICY_F_VIP_RATE != 0
    }

    #[inline(always)]
    pub const fn limits_sources(&self) -> bool {
        self.flags & POLICY_F_SOURCE_RATE != 0
    }
}

/// The data of an `XLB_SRC_V4` key (the trie key is this behind a prefix
/// length): the vip id, big-endian so that it is the first 32 bits matched,
/// then the address. An entry for `a.b.c.d/n` of VIP 3 has prefix length
/// `32 + n`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SourceV4 {
    vip_id: [u8; 4],
    addr: [u8; 4],
}

/// The data of an `XLB_SRC_V6` key, like [`SourceV4`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SourceV6 {
    vip_id: [u8; 4],
    addr: [u8; 16],
}

impl SourceV4 {
    pub const fn new(vip_id: u32, addr: [u8; 4]) -> Self {
        Self {
            vip_id: vip_id.to_be_bytes(),
            addr,
        }
    }

    /// Fills `self` (zeroed stack memory in the data plane) with the flow's
    /// source.
    #[inline(always)]
    pub fn set(&mut self, vip_id: u32, flow: &FlowKey) {
        self.vip_id = vip_id.to_be_bytes();
        self.addr = [flow.src[0], flow.src[1], flow.src[2], flow.src[3]];
    }

    pub const fn vip_id(&self) -> u32 {
        u32::from_be_bytes(self.vip_id)
    }

    pub const fn addr(&self) -> [u8; 4] {
        self.addr
    }
}

impl SourceV6 {
    pub const fn new(vip_id: u32, addr: [u8; 16]) -> Self {
        Self {
            vip_id: vip_id.to_be_bytes(),
            addr,
        }
    }

    /// Fills `self` (zeroed stack memory in the data plane) with the flow's
    /// source.
    #[inline(always)]
    pub fn set(&mut self, vip_id: u32, flow: &FlowKey) {
        self.vip_id = vip_id.to_be_bytes();
        bytes::copy(&mut self.addr, &flow.src);
    }

    pub const fn vip_id(&self) -> u32 {
        u32::from_be_bytes(self.vip_id)
    }

    pub const fn addr(&self) -> [u8; 16] {
        self.addr
    }
}

/// Bits of a trie key's prefix length taken by the vip id.
pub const SOURCE_KEY_VIP_BITS: u32 = 32;

/// Key of `XLB_RATE_SRCS`: a VIP and a source prefix (the source address
/// with the bits past the VIP's source prefix length cleared).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SourceBucketKey {
    pub vip_id: u32,
    /// IPv4 in the first 4 bytes, or IPv6; masked.
    addr: [u8; 16],
    family: u8,
    prefix_len: u8,
    _pad: [u8; 2],
}

impl SourceBucketKey {
    /// The bucket of `flow`'s source for VIP `vip_id` under `policy`; built
    /// in place (zeroed stack memory in the data plane), without branches.
    #[inline(always)]
    pub fn set(&mut self, vip_id: u32, flow: &FlowKey, policy: &VipPolicy) {
        self.vip_id = vip_id;
        self.family = flow.family;
        self.prefix_len = policy.source_prefix;
        let mut i = 0;
        while i < 16 {
            self.addr[i] = flow.src[i] & policy.source_mask[i];
            i += 1;
        }
    }

    /// The source prefix this bucket counts.
    pub fn source(&self) -> (IpAddr, u8) {
        (
            crate::ip::from_addr16(&self.addr, self.family),
            self.prefix_len,
        )
    }

    /// The bucket of `source` (masked to `prefix_len`) for VIP `vip_id`.
    pub fn new(vip_id: u32, source: IpAddr, prefix_len: u8) -> Self {
        let (mut addr, family) = to_addr16(source);
        crate::policy::mask_prefix(&mut addr, prefix_len);
        Self {
            vip_id,
            addr,
            family,
            prefix_len,
            _pad: [0; 2],
        }
    }
}

/// Per-CPU value of `XLB_POLICY_STATS`, indexed by vip id: packets dropped
/// by the VIP's policy, by reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PolicyStats {
    /// The source matched a deny prefix (`source_denied`).
    pub denied: u64,
    /// The VIP has an allow list and the source matched none
    /// (`source_not_allowed`).
    pub not_allowed: u64,
    /// A new connection over the VIP's rate (`vip_rate_limited`).
    pub vip_rate_limited: u64,
    /// A new connection over its source prefix's rate
    /// (`source_rate_limited`).
    pub source_rate_limited: u64,
}

impl core::ops::Add for PolicyStats {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            denied: self.denied + o.denied,
            not_allowed: self.not_allowed + o.not_allowed,
            vip_rate_limited: self.vip_rate_limited + o.vip_rate_limited,
            source_rate_limited: self.source_rate_limited + o.source_rate_limited,
        }
    }
}

/// Per-CPU value of `XLB_FLOOD` (one entry): flood mode's window and what
/// it skipped.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FloodState {
    /// Start of the current window (coarse monotonic ns).
    pub window_start_ns: u64,
    /// Connection-table misses (would-be inserts) in the current window.
    pub window_misses: u64,
    /// Inserts skipped because this CPU was flooding, since load.
    pub skipped_inserts: u64,
    /// Windows in which this CPU started flooding, since load.
    pub flood_windows: u64,
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, integers and byte arrays only, no implicit
// padding (pinned by `layout` below).
unsafe impl aya::Pod for VipPolicy {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for SourceV4 {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for SourceV6 {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for SourceBucketKey {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for PolicyStats {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for FloodState {}

#[cfg(test)]
mod layout {
    use core::mem::{align_of, offset_of, size_of};

    use super::*;

    #[test]
    fn vip_policy() {
        assert_eq!(size_of::<VipPolicy>(), 64);
        assert_eq!(offset_of!(VipPolicy, source_prefix), 4);
        assert_eq!(offset_of!(VipPolicy, source_mask), 8);
        assert_eq!(offset_of!(VipPolicy, access_generation), 24);
        assert_eq!(offset_of!(VipPolicy, vip_rate), 32);
        assert_eq!(offset_of!(VipPolicy, source_rate), 48);
        assert_eq!(size_of::<Gcra>(), 16);
        let p = VipPolicy::NONE.with_source_rate(Gcra::new(1, 1), 20);
        assert_eq!(&p.source_mask[..4], &[0xff, 0xff, 0xf0, 0]);
        assert_eq!(p.source_prefix, 20);
    }

    #[test]
    fn trie_keys() {
        assert_eq!(size_of::<SourceV4>(), 8);
        assert_eq!(size_of::<SourceV6>(), 20);
        assert_eq!(align_of::<SourceV6>(), 1);
        assert_eq!(offset_of!(SourceV6, addr), 4);
        assert_eq!(SourceV4::new(3, [10, 0, 0, 1]).vip_id, [0, 0, 0, 3]);
    }

    #[test]
    fn bucket_key_and_counters() {
        assert_eq!(size_of::<SourceBucketKey>(), 24);
        assert_eq!(offset_of!(SourceBucketKey, addr), 4);
        assert_eq!(offset_of!(SourceBucketKey, family), 20);
        assert_eq!(offset_of!(SourceBucketKey, prefix_len), 21);
        assert_eq!(size_of::<PolicyStats>(), 32);
        assert_eq!(size_of::<FloodState>(), 32);
    }

    #[test]
    fn gcra_parameters() {
        let g = Gcra::new(100, 5);
        assert_eq!(g.interval_ns, 10_000_000);
        assert_eq!(g.tolerance_ns, 40_000_000);
        assert_eq!((g.per_second(), g.burst()), (100, 5));
        assert_eq!(Gcra::new(3, 1).per_second(), 3);
        assert_eq!(Gcra::default().per_second(), 0);
    }

    #[test]
    fn bucket_keys_group_a_prefix() {
        let a = SourceBucketKey::new(1, IpAddr::from([192, 0, 2, 7]), 24);
        let b = SourceBucketKey::new(1, IpAddr::from([192, 0, 2, 200]), 24);
        let c = SourceBucketKey::new(1, IpAddr::from([192, 0, 3, 7]), 24);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.source(), (IpAddr::from([192, 0, 2, 0]), 24));
        let flow = FlowKey::new(
            IpAddr::from([192, 0, 2, 99]),
            1,
            IpAddr::from([10, 0, 0, 1]),
            80,
            crate::maps::PROTO_TCP,
        )
        .expect("same family");
        let policy = VipPolicy::NONE.with_source_rate(Gcra::new(1, 1), 24);
        let mut k = SourceBucketKey::default();
        k.set(1, &flow, &policy);
        assert_eq!(k, a);
    }
}
