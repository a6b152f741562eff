//! xlb's XDP fast path: one program, `xlb_balancer`, read top to bottom.
//!
//!  1. Parse Ethernet (+1 VLAN tag), IPv4/IPv6, TCP/UDP ports.
//!  2. A destination whose bit in `XLB_VIP_FILTER` is clear is no VIP
//!     address: XDP_PASS after one array read. Else a TCP/UDP packet that
//!     does not open a connection looks up its connection-table entry
//!     (`XLB_FLOWS`) first: the entry's backend (`XLB_BACKENDS`) names its
//!     VIP's id, whose config (`XLB_VIP_CFG_IX`, `XLB_VIP_CFG`) holds the
//!     VIP when it is the exact VIP of the destination. Other packets, and
//!     flows whose config does not answer, look the destination up in
//!     `XLB_VIPS` (exact port,
//!     then port 0): the same VIP either way, one hash lookup fewer for an
//!     established flow.
//!     Anything else leaves with XDP_PASS, unmodified, after one counter bump.
//!     The VIP's source ranges (`XLB_POLICY`, tries `XLB_SRC_V4`/`_V6`) may
//!     refuse the source: dropped, counted in `XLB_POLICY_ST`.
//!     Traffic without ports to a VIP address goes by the address's marker
//!     in `XLB_VIPS` (`try_balance` dispatches; `lb_ebpf::icmp` holds the
//!     ICMP machinery):
//!     - an ICMP echo request is answered here when the address allows ping;
//!     - an ICMP error quoting a VIP's packet (the backend's reply) is
//!       balanced as the flow it quotes, reversed: it reaches that flow's
//!       backend, which learns e.g. the path MTU toward its client;
//!     - a fragment goes to the source-hashed VIP the marker names for its
//!       protocol (by the source address: no ports needed), else is dropped.
//!  3. Pick a backend: the connection table's entry first (an existing flow
//!     keeps its backend when the backend set changes, unless the backend
//!     failed its health check, the packet opens a new TCP connection or the
//!     UDP entry expired), else the VIP's Maglev table in `XLB_MAGLEV` indexed
//!     by the flow hash seeded with the deployment's `hash_seed`. A new
//!     connection (bare SYN, UDP flow without entry) must fit the VIP's rate
//!     limits (`XLB_RATE_SRCS`, `XLB_RATE_VIPS`). A bare SYN never creates
//!     an entry (the handshake's ACK does), and while this CPU sees more
//!     misses than the flood threshold (`XLB_FLOOD`) nothing does: unknown
//!     flows then follow Maglev and established entries stay.
//!
//! The short path: an established flow's packet that needs nothing more
//! than its entry (followed under the VIP's current source policy, to an
//! IP-in-IP or GUE VIP, this CPU's next hop toward the backend cached and
//! checked for its length, leaving on its own VLAN: `established` lists
//! the conditions) goes from step 2 straight to the push, with the same
//! checks, counters, entry refresh, frame and verdict as steps 3-5 give it.
//! It is the path most packets take (and the benchmark's flow hit),
//! written straight for that case; every other packet reaches the general
//! path below unchanged.
//!
//! Steps 2 and 3 are decided by `lb_common::decision` and
//! `lb_common::policy` (lookup order, hash, slot, which entries are followed,
//! refreshed and created, source access, token buckets, flood windows), the
//! same functions `xlb explain` runs against the live maps, so the two can
//! never disagree; so is the egress of step 4 (`decision::egress`).
//!  4. Find the next hop toward the backend (this CPU's `XLB_NEXTHOPS` cache of
//!     kernel FIB answers, refreshed every 100 ms), check the egress keeps the
//!     packet on its VLAN (`XLB_VLANS`), trim anything beyond the IP packet,
//!     hand the packet over by the VIP's forwarding mode (push an IP-in-IP
//!     or GUE header and the next hop's MACs, or for `l2-dsr` rewrite only
//!     the MACs; ICMP errors and fragments too), and transmit: XDP_TX out of
//!     the ingress interface, or a redirect through `XLB_TX_PORTS`. A packet
//!     that no longer fits the egress MTU once the mode's header is added is
//!     answered with an ICMP "fragmentation needed" / "packet too big"
//!     carrying the MTU its sender must use. What the balancer sends itself
//!     is rate-limited per CPU (`XLB_ICMP_LIMIT`).
//!     A `nat` VIP's packet is handed to the program `xlb_nat` instead (a
//!     tail call, its backend id in `XLB_NAT_HANDOFF`): it gets a NAT
//!     address and port of its session (`lb_ebpf::nat`: `XLB_NAT_FWD`,
//!     `XLB_NAT_REV`) and is rewritten to the backend from there. TCP/UDP
//!     packets to a NAT address (`[nat] sources`) go to `xlb_nat` too: the
//!     backends' replies to NAT sessions are translated back and sent
//!     toward the client (`nat_reply`).
//!  5. Count: every packet bumps exactly one `XLB_VERDICTS` slot; VIP traffic
//!     also bumps `XLB_VIP_STATS` and `XLB_BE_STATS`.
//!
//! A VIP packet reads the clock through this CPU's cache of it (`XLB_CLOCK`,
//! `lb_ebpf::clock`: the clock helper once per tick): once, or twice when
//! the short path declines it after reading it (the second read is one
//! load of the cache).
//!
//! Map sizes below are defaults; the daemon sets the real ones at load time.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::{xdp_action, BPF_ANY, BPF_F_MMAPABLE, BPF_F_NO_COMMON_LRU, BPF_NOEXIST},
    macros::{map, xdp},
    maps::{Array, DevMapHash, HashMap, LpmTrie, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use lb_common::{
    bytes,
    decision::{
        self, consults_flow_table, creates_flow_entry, follows_flow_entry, is_live_backend,
        is_new_connection, maglev_slot, refreshes_flow_entry, repins_flow_entry, uses_flow_table,
        Egress, PacketFacts,
    },
    forwarding::{self, gue, FORWARDING_GUE, FORWARDING_IPIP, FORWARDING_L2_DSR, FORWARDING_NAT},
    icmp::{self, Role},
    policy::{source_access_current, SourceAccess},
    vip_filter_slot, Backend, BackendStats, CachedHop, ClockCache, FloodState, FlowKey, FlowValue,
    GlobalConfig, IcmpBucket, MacPair, PolicyStats, SourceBucketKey, SourceV4, SourceV6, Verdict,
    VipInfo, VipKey, VipPolicy, VipSlot, VipStats, VlanDevice, DEFAULT_FLOW_TABLE_SIZE,
    DEFAULT_MAX_BACKENDS, DEFAULT_MAX_VIPS, DEFAULT_TABLE_SIZE, FAMILY_V4, ICMP_BUCKETS,
    ICMP_BUCKET_ECHO, ICMP_BUCKET_TOO_BIG, MAX_POLICY_PREFIXES, MAX_RATE_SOURCES, MAX_TX_PORTS,
    MAX_VLAN_DEVICES, NEXTHOP_TTL_NS, NO_BACKEND, VIP_FILTER_WORDS,
};
use lb_ebpf::{
    clock,
    encap::{self, fib_rc, NextHop, Outer, Route},
    icmp as icmp_packet, l2_dsr, mem,
    packet::ref_at,
    parse::{self, Ip, L4Status, ParseError, L2},
    policy,
};

mod nat_program;

/// Virtual services: (address, port, protocol, family) -> VIP. Port 0 matches
/// every port. Entries with protocol 0 are address markers (one per VIP
/// address): they recognise traffic without ports to a VIP address and say
/// what to do with it (answer pings; which VIP takes fragments).
#[map]
static XLB_VIPS: HashMap<VipKey, VipInfo> = HashMap::with_max_entries(DEFAULT_MAX_VIPS * 2, 0);

/// Each VIP id's index in `XLB_VIP_CFG` (`lb_common::NO_VIP_CONFIG`: none).
/// Mmapable: the daemon re-points an id with one aligned 8-byte store.
#[map]
static XLB_VIP_CFG_IX: Array<u64> = Array::with_max_entries(DEFAULT_MAX_VIPS, BPF_F_MMAPABLE);

/// Every VIP with its key (`lb_common::VipSlot`), by config index: an
/// established flow's VIP, reached from its entry's backend in inline array
/// reads. A slot is never rewritten while a packet may read it (the daemon
/// writes a changed VIP into a free index and reuses an index only after an
/// RCU grace period: `lb_common::maps::vip_slot`), so a packet never reads
/// half of an update.
#[map]
static XLB_VIP_CFG: Array<VipSlot> = Array::with_max_entries(DEFAULT_MAX_VIPS * 2 + 1, 0);

/// One bit per hashed VIP address (`lb_common::vip_filter_slot`): a clear
/// bit answers "not a VIP address" for most of the host's other traffic
/// with one array read instead of two hash lookups of the VIP key.
#[map]
static XLB_VIP_FILTER: Array<u64> = Array::with_max_entries(VIP_FILTER_WORDS, 0);

/// Backends by id (id 0 is never used: a zero slot means "none").
#[map]
static XLB_BACKENDS: Array<Backend> = Array::with_max_entries(DEFAULT_MAX_BACKENDS, 0);

/// All VIPs' Maglev tables back to back (`VipInfo::table_offset/size`, in
/// slots), holding backend ids. Two consecutive slots per element: the kernel
/// rounds array elements up to 8 bytes, so a `u32` element would waste half the
/// table's memory. Mmapable: the daemon rewrites changed slots in place through a
/// shared mapping (a dense `u32` array), without a syscall per slot.
#[map]
static XLB_MAGLEV: Array<[u32; 2]> = Array::with_max_entries(
    DEFAULT_MAX_VIPS * DEFAULT_TABLE_SIZE / 2 + 1,
    BPF_F_MMAPABLE,
);

/// Connection table: 5-tuple -> backend id. One shared hash with per-CPU LRU
/// lists (BPF_F_NO_COMMON_LRU): no cross-CPU lock on the LRU, yet a flow whose
/// packets arrive on another CPU (RSS change, veth, reschedule) still finds its
/// entry — a per-CPU *hash* would send it through Maglev again and could move it.
#[map]
static XLB_FLOWS: LruHashMap<FlowKey, FlowValue> =
    LruHashMap::with_max_entries(DEFAULT_FLOW_TABLE_SIZE, BPF_F_NO_COMMON_LRU);

/// Outer source addresses, outer TTL, hash seed, flood threshold (one entry).
#[map]
static XLB_CONFIG: Array<GlobalConfig> = Array::with_max_entries(1, 0);

/// Each VIP's policy (source ranges present, allow list, rate limits), by
/// vip id; all zero: none.
#[map]
static XLB_POLICY: Array<VipPolicy> = Array::with_max_entries(DEFAULT_MAX_VIPS, 0);

/// Source prefixes of every VIP: (vip id, address) -> allow or deny. One
/// longest-prefix lookup per packet answers "deny wins" because userspace
/// never installs an allow prefix inside a deny prefix (`policy::source_access`).
#[map]
static XLB_SRC_V4: LpmTrie<SourceV4, u32> = LpmTrie::with_max_entries(MAX_POLICY_PREFIXES, 0);

#[map]
static XLB_SRC_V6: LpmTrie<SourceV6, u32> = LpmTrie::with_max_entries(MAX_POLICY_PREFIXES, 0);

/// Each VIP's new-connection bucket (GCRA time), by vip id. Shared by all
/// CPUs and updated with compare-and-swap, so the rate is the VIP's, not
/// per CPU.
#[map]
static XLB_RATE_VIPS: Array<u64> = Array::with_max_entries(DEFAULT_MAX_VIPS, 0);

/// Each (VIP, source prefix)'s new-connection bucket, shared like
/// `XLB_RATE_VIPS`; per-CPU LRU lists (BPF_F_NO_COMMON_LRU) so a flood of
/// new sources takes no cross-CPU lock.
#[map]
static XLB_RATE_SRCS: LruHashMap<SourceBucketKey, u64> =
    LruHashMap::with_max_entries(MAX_RATE_SOURCES, BPF_F_NO_COMMON_LRU);

/// Packets each VIP's policy dropped, by reason.
#[map]
static XLB_POLICY_ST: PerCpuArray<PolicyStats> = PerCpuArray::with_max_entries(DEFAULT_MAX_VIPS, 0);

/// Flood mode: this CPU's window of connection-table misses (one entry).
#[map]
static XLB_FLOOD: PerCpuArray<FloodState> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's last FIB answer per backend id (see `next_hop`). The daemon
/// zeroes an id's entries when it assigns the id to a new backend.
#[map]
static XLB_NEXTHOPS: PerCpuArray<CachedHop> =
    PerCpuArray::with_max_entries(DEFAULT_MAX_BACKENDS, 0);

/// The host's VLAN devices by ifindex (filled by the daemon from netlink):
/// the FIB names an egress device, not its VLAN.
#[map]
static XLB_VLANS: HashMap<u32, VlanDevice> = HashMap::with_max_entries(MAX_VLAN_DEVICES, 0);

/// Interfaces an encapsulated packet may be redirected to, keyed by ifindex.
#[map]
static XLB_TX_PORTS: DevMapHash = DevMapHash::with_max_entries(MAX_TX_PORTS, 0);

#[map]
static XLB_VIP_STATS: PerCpuArray<VipStats> = PerCpuArray::with_max_entries(DEFAULT_MAX_VIPS, 0);

#[map]
static XLB_BE_STATS: PerCpuArray<BackendStats> =
    PerCpuArray::with_max_entries(DEFAULT_MAX_BACKENDS, 0);

/// This CPU's token buckets for the ICMP messages the balancer sends itself
/// (`ICMP_BUCKET_TOO_BIG`, `ICMP_BUCKET_ECHO`): per CPU, so no lock or
/// atomic is taken on the fast path.
#[map]
static XLB_ICMP_LIMIT: PerCpuArray<IcmpBucket> = PerCpuArray::with_max_entries(ICMP_BUCKETS, 0);

/// This CPU's last reading of the coarse clock (`lb_ebpf::clock`): the
/// clock helper is called once per tick, not once per packet.
#[map]
static XLB_CLOCK: PerCpuArray<ClockCache> = PerCpuArray::with_max_entries(1, 0);

/// One packet counter per `Verdict`.
#[map]
static XLB_VERDICTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Verdict::COUNT, 0);

// Inlined into the entry aya's macro wraps it in: as a subprogram of its
// own every packet paid a call and a return (through the return thunk of
// hosts with the SRSO mitigation) before the first header was read.
#[xdp]
#[inline(always)]
pub fn xlb_balancer(ctx: XdpContext) -> u32 {
    let (verdict, action) = balance(&ctx);
    if let Some(slot) = XLB_VERDICTS.get_ptr_mut(verdict as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { *slot += 1 };
    }
    action
}

/// Returns the reason and the XDP action (they differ only for redirects, whose
/// action comes from the helper).
#[inline(always)]
fn balance(ctx: &XdpContext) -> (Verdict, u32) {
    match try_balance(ctx) {
        Ok(action) => action,
        Err(v) => (v, v.xdp_action()),
    }
}

/// What a balanced packet is to the flow it is balanced as: how its backend
/// is found (`follow_entry`, `pick_by_table`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Carrier {
    /// A TCP/UDP packet of the flow itself.
    Flow,
    /// An ICMP error quoting a packet of the flow: the flow's backend as its
    /// packets find it, without touching the connection table.
    IcmpError,
    /// A fragment to a source-hashed VIP: the VIP's table by source address.
    Fragment,
}

#[inline(always)]
fn try_balance(ctx: &XdpContext) -> Result<(Verdict, u32), Verdict> {
    let l2 = parse::parse_l2(ctx).map_err(parse_verdict)?;
    // The 5-tuple is parsed straight into the connection-table key.
    let mut key_buf = MaybeUninit::<mem::Aligned<FlowKey>>::uninit();
    // SAFETY: FlowKey is integers and byte arrays: all-zero is valid.
    let key: &mut FlowKey = unsafe { mem::zeroed(&mut key_buf) };
    let ip = parse::parse_ip(ctx, &l2, key).map_err(parse_verdict)?;
    // Ports first: a TCP/UDP header too short is malformed whoever it is for.
    let tcp_flags = if ip.l4 == L4Status::TcpUdp {
        parse::parse_ports(ctx, &ip, key).map_err(parse_verdict)?
    } else {
        0
    };
    if !may_be_vip_address(key) {
        return Err(Verdict::NotVip);
    }

    let mut vip_buf = MaybeUninit::<mem::Aligned<VipInfo>>::uninit();
    let (carrier, tcp_flags, vip, flow) = match ip.l4 {
        L4Status::TcpUdp => {
            // The connection table first: an established flow's entry leads
            // to its VIP through two array reads (`vip_of_entry`).
            let flow = flow_entry(key, tcp_flags);
            let by_entry = flow.and_then(|f| vip_of_entry(&f, key).map(|vip| (f, vip)));
            if let Some((f, vip)) = by_entry {
                if let Some(sent) = established(ctx, &l2, &ip, key, tcp_flags, &f, vip) {
                    return sent;
                }
            }
            let vip = match by_entry {
                Some((_, vip)) => vip,
                // A destination that passed the filter but is no VIP may be
                // a NAT address (the filter holds those too): a reply, perhaps.
                None => match lookup_vip(key) {
                    Some(vip) => vip,
                    None => return Err(nat_program::maybe_nat_reply(ctx, key)),
                },
            };
            (Carrier::Flow, tcp_flags, vip, flow)
        }
        // No usable ports: a source-hashed VIP may take it, else it is
        // dropped if it is addressed to a VIP address.
        L4Status::Fragment if parse::bare_header(&ip) => {
            (Carrier::Fragment, 0, fragment_vip(ctx, &ip, key)?, None)
        }
        L4Status::Fragment => return Err(unbalanceable(key, Verdict::Fragment)),
        L4Status::UnsupportedExt => return Err(unbalanceable(key, Verdict::Ipv6ExtUnsupported)),
        L4Status::Other if ip.proto == icmp::proto_of(ip.family) && parse::bare_header(&ip) => {
            let marker = address_marker(key).ok_or(Verdict::NotVip)?;
            let m = icmp_packet::message(ctx, &ip).map_err(parse_verdict)?;
            match icmp::role(ip.family, m.icmp_type) {
                Role::EchoRequest => return answer_ping(ctx, &ip, key, marker),
                Role::Error => {
                    // `key` becomes the flow the error quotes.
                    icmp_packet::quoted_flow(ctx, &ip, key).map_err(|_| Verdict::IcmpMalformed)?;
                    let vip = lookup_vip(key).ok_or(Verdict::NotVip)?;
                    // The flow's entry, read (never written) as the flow's
                    // own packets read it.
                    (Carrier::IcmpError, 0, vip, flow_entry(key, 0))
                }
                Role::Other => return Err(Verdict::NotVip),
            }
        }
        L4Status::Other => return Err(Verdict::NotVip),
    };
    // On the stack, the VIP is one value whichever map it came from.
    let vip = mem::copied(&mut vip_buf, vip);
    let key: &FlowKey = key;
    let ip_len = ip.ip_len as u64;
    count_vip_packet(vip.vip_id, ip_len);

    let policy = XLB_POLICY.get(vip.vip_id).ok_or(Verdict::Internal)?;
    let cfg = XLB_CONFIG.get(0).ok_or(Verdict::Internal)?;
    // The one clock read of a VIP packet: flow-entry ages, token buckets,
    // flood windows and the next-hop cache all use it.
    let now_ns = clock::now_ns(&XLB_CLOCK);
    let packet = PacketFacts {
        proto: key.proto(),
        tcp_flags,
        now_ns,
    };
    let followed = follow_entry(vip, policy, key, flow, &packet, carrier)?;
    // The flow hash picks the table slot, and some modes put it in the outer
    // header; an IPv4 IP-in-IP or l2-dsr packet that follows its entry
    // needs it for neither.
    let needs_hash = match followed {
        Some((_, b)) => forwarding::outer_uses_hash(vip.forwarding_byte(), b.family()),
        None => true,
    };
    let hash = if needs_hash {
        decision::vip_hash(cfg.hash_seed(), vip.flags, key)
    } else {
        0
    };
    let (backend_id, backend) = match followed {
        Some(f) => f,
        None => pick_by_table(ctx, cfg, vip, policy, key, hash, &packet, carrier)?,
    };
    count_backend_packet(backend_id, ip_len);

    let p = Balanced {
        l2: &l2,
        ip: &ip,
        key,
        hash,
        now_ns,
    };
    forward(ctx, cfg, &p, vip, backend_id, backend)
}

/// An established flow's packet, sent the short way when nothing about it
/// needs more: its entry is followed (`follows_flow_entry`) under the VIP's
/// current source policy, the VIP encapsulates (IP-in-IP or GUE), this
/// CPU's next hop toward the backend is fresh and checked for this length,
/// and the frame leaves by XDP_TX or a redirect on its own VLAN. Exactly
/// what the general path (`try_balance` on) does with such a packet (the
/// same counters, entry refresh, trim, header and verdict) without the
/// generality it pays for: the VIP copied to the stack, the route and exit
/// values shared with the other modes, the carrier's re-read of the packet.
/// Every check comes before the first write (the clock's per-CPU cache
/// aside, which the general path's read leaves as it finds it), so `None`
/// (anything else) hands the packet to the general path untouched.
#[inline(always)]
fn established(
    ctx: &XdpContext,
    l2: &L2,
    ip: &Ip,
    key: &FlowKey,
    tcp_flags: u8,
    flow: &FlowEntry,
    vip: &VipInfo,
) -> Option<Result<(Verdict, u32), Verdict>> {
    let mode = vip.forwarding_byte();
    if mode != FORWARDING_IPIP && mode != FORWARDING_GUE {
        return None;
    }
    let policy = XLB_POLICY.get(vip.vip_id)?;
    let packet = PacketFacts {
        proto: key.proto(),
        tcp_flags,
        now_ns: clock::now_ns(&XLB_CLOCK),
    };
    // SAFETY: a map value, valid for the whole run (see `FlowEntry`).
    let entry = unsafe { &*flow.value };
    let id = flow.backend_id;
    let backend = flow.backend;
    if !consults_flow_table(vip.flags, &packet)
        || !follows_flow_entry(id, backend, vip, entry, &packet)
        || !source_access_current(policy, entry)
    {
        return None;
    }
    let family = backend.family();
    let len = ip.ip_len + forwarding::overhead_of(mode, family);
    let hop = XLB_NEXTHOPS.get(id)?;
    if !hop.serves(packet.now_ns, len) {
        return None;
    }
    // Taken now, with the freshness just checked, as `next_hop` does: the
    // daemon may reset the slot (a recycled backend id) while we run.
    let (macs, egress) = (hop.macs(), hop.ifindex);
    let ingress = ctx.ingress_ifindex() as u32;
    let how = decision::egress(ingress, l2.vlan_tpid, l2.vlan_tci, egress, &hop.egress_vlan);
    if how == Egress::VlanMismatch {
        return None;
    }
    let cfg = XLB_CONFIG.get(0)?;
    let mut src_buf = MaybeUninit::<mem::Aligned<[u8; 16]>>::uninit();
    // SAFETY: a byte array: all-zero is valid.
    let src: &mut [u8; 16] = unsafe { mem::zeroed(&mut src_buf) };
    if family == FAMILY_V4 {
        bytes::copy_v4(src, cfg.src_v4_octets()?);
    } else {
        bytes::copy(src, cfg.src_v6_octets()?);
    }

    // Committed: the general path's writes, in its order.
    let ip_len = ip.ip_len as u64;
    count_vip_packet(vip.vip_id, ip_len);
    if refreshes_flow_entry(vip, entry, &packet) {
        // SAFETY: see `follow_entry`.
        unsafe { (*flow.value).last_seen_ns = packet.now_ns };
    }
    count_backend_packet(id, ip_len);
    let hash = if forwarding::outer_uses_hash(mode, family) {
        decision::vip_hash(cfg.hash_seed(), vip.flags, key)
    } else {
        0
    };
    if !encap::trim_to(ctx, l2.l3_off + ip.ip_len) {
        return Some(Err(Verdict::Internal));
    }
    let outer = outer_header(family, src, backend.addr16(), ip, cfg, vip, hash);
    if !encap::push_outer(ctx, l2, &outer, &macs) {
        return Some(Err(Verdict::Internal));
    }
    Some(match how {
        Egress::Tx => Ok((Verdict::Tx, xdp_action::XDP_TX)),
        _ => match XLB_TX_PORTS.redirect(egress, 0) {
            Ok(action) => Ok((Verdict::Redirect, action)),
            Err(_) => Err(Verdict::RedirectFailed),
        },
    })
}

/// Who may reach the VIP at all, asked of every packet, established or not,
/// so that a deny added at run time also cuts existing connections (an
/// established flow asks its connection-table entry first:
/// `lb_common::policy::source_access_current`).
#[inline(always)]
fn check_source(vip_id: u32, policy: &VipPolicy, key: &FlowKey) -> Result<(), Verdict> {
    match policy::source_access(&XLB_SRC_V4, &XLB_SRC_V6, vip_id, policy, key) {
        SourceAccess::Allowed => Ok(()),
        SourceAccess::Denied => Err(policy_drop(vip_id, Verdict::SourceDenied)),
        SourceAccess::NotAllowed => Err(policy_drop(vip_id, Verdict::SourceNotAllowed)),
    }
}

/// Counts a packet the VIP's policy drops, by reason, and returns `reason`.
#[inline(always)]
fn policy_drop(vip_id: u32, reason: Verdict) -> Verdict {
    if let Some(s) = XLB_POLICY_ST.get_ptr_mut(vip_id) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe {
            match reason {
                Verdict::SourceDenied => (*s).denied += 1,
                Verdict::SourceNotAllowed => (*s).not_allowed += 1,
                Verdict::VipRateLimited => (*s).vip_rate_limited += 1,
                _ => (*s).source_rate_limited += 1,
            }
        }
    }
    reason
}

#[inline(always)]
fn parse_verdict(e: ParseError) -> Verdict {
    match e {
        ParseError::NotIp => Verdict::NotIp,
        ParseError::Malformed => Verdict::Malformed,
    }
}

/// A packet without usable ports: `reason` (dropped) if its destination is a VIP
/// address, else it is not ours and passes.
#[inline(always)]
fn unbalanceable(key: &FlowKey, reason: Verdict) -> Verdict {
    let mut buf = MaybeUninit::<mem::Aligned<VipKey>>::uninit();
    // SAFETY: VipInfo is plain data; a concurrent update replaces the whole
    // element (hash map RCU), it never tears one.
    if decision::is_vip_address(vip_key(&mut buf, key), |k| unsafe { XLB_VIPS.get(k) }) {
        reason
    } else {
        Verdict::NotVip
    }
}

/// False when the destination's bit in `XLB_VIP_FILTER` is clear: no VIP
/// has this address (userspace sets a VIP address's bit before the VIP
/// appears and clears it after the last VIP of the address is gone).
#[inline(always)]
fn may_be_vip_address(key: &FlowKey) -> bool {
    let (word, mask) = vip_filter_slot(key.dst16());
    match XLB_VIP_FILTER.get(word) {
        Some(w) => *w & mask != 0,
        // Never expected (the index is below the map's size): decide by
        // the VIP lookups, as without the filter.
        None => true,
    }
}

/// A connection-table entry and the backend slot it names, read once for
/// all its uses: finding the VIP (`vip_of_entry`), the short path
/// (`established`) and following the entry (`follow_entry`).
#[derive(Clone, Copy)]
struct FlowEntry {
    /// The map value. Other CPUs write only `last_seen_ns` and
    /// `access_generation` in place (aligned 8- and 4-byte stores, never
    /// torn) and a bare SYN's repin `backend_id`; replacements swap the
    /// whole element (hash map RCU).
    value: *mut FlowValue,
    backend_id: u32,
    backend: &'static Backend,
}

/// The connection-table entry of the flow and its backend slot, unless the
/// packet opens a connection (`decision::opens_connection`: a
/// bare SYN follows no entry, so it is spared the lookup) or the entry
/// names no backend (`NO_BACKEND`): neither is followed.
#[inline(always)]
fn flow_entry(key: &FlowKey, tcp_flags: u8) -> Option<FlowEntry> {
    if decision::opens_connection(key.proto(), tcp_flags) {
        return None;
    }
    let value = XLB_FLOWS.get_ptr_mut(key)?;
    // SAFETY: a map value, valid for the whole run (see `FlowEntry`).
    let backend_id = unsafe { (*value).backend_id };
    if backend_id == NO_BACKEND {
        return None;
    }
    Some(FlowEntry {
        value,
        backend_id,
        backend: XLB_BACKENDS.get(backend_id)?,
    })
}

/// The VIP of the flow whose entry is `entry`, found without `XLB_VIPS`:
/// the VIP of the entry's backend (`Backend::vip_id`, the slot its
/// `XLB_VIP_CFG_IX` index names), when it is the exact VIP the lookup would
/// find first (`VipSlot::is_exact_vip_of`). `None` sends the packet to
/// `lookup_vip`.
/// Whether the entry is followed is still `follow_entry`'s decision.
#[inline(always)]
fn vip_of_entry(entry: &FlowEntry, key: &FlowKey) -> Option<&'static VipInfo> {
    let index = XLB_VIP_CFG_IX.get(entry.backend.vip_id)?;
    // One load: the daemon re-points the id with one aligned store.
    // SAFETY: a valid, aligned map value.
    let index = unsafe { core::ptr::read_volatile(index) };
    // Index 0 holds the all-zero slot, the exact VIP of no flow.
    let slot = XLB_VIP_CFG.get(index as u32)?;
    slot.is_exact_vip_of(key).then_some(&slot.info)
}

/// The VIP the packet is for (`decision::lookup_vip`: exact port, then port 0).
#[inline(always)]
fn lookup_vip(key: &FlowKey) -> Option<&'static VipInfo> {
    let mut buf = MaybeUninit::<mem::Aligned<VipKey>>::uninit();
    // SAFETY: see `unbalanceable`.
    decision::lookup_vip(vip_key(&mut buf, key), |k| unsafe { XLB_VIPS.get(k) })
}

/// The marker of the packet's destination, if it is a VIP address.
#[inline(always)]
fn address_marker(key: &FlowKey) -> Option<&'static VipInfo> {
    let mut buf = MaybeUninit::<mem::Aligned<VipKey>>::uninit();
    // SAFETY: see `unbalanceable`.
    decision::address_marker(vip_key(&mut buf, key), |k| unsafe { XLB_VIPS.get(k) })
}

/// The VIP a fragment goes to: the source-hashed VIP its address marker
/// names for the fragment's protocol (`decision::fragment_vip`). Dropped as
/// `fragment` when there is none; not ours when not sent to a VIP address.
#[inline(always)]
fn fragment_vip(ctx: &XdpContext, ip: &Ip, key: &FlowKey) -> Result<&'static VipInfo, Verdict> {
    let mut buf = MaybeUninit::<mem::Aligned<VipKey>>::uninit();
    let vk = vip_key(&mut buf, key);
    // SAFETY: see `unbalanceable`.
    let marker = decision::address_marker(vk, |k| unsafe { XLB_VIPS.get(k) });
    let marker = marker.ok_or(Verdict::NotVip)?;
    let proto = parse::fragment_proto(ctx, ip).map_err(|_| Verdict::Fragment)?;
    if !decision::fragment_vip(marker, proto, vk) {
        return Err(Verdict::Fragment);
    }
    // SAFETY: see `unbalanceable`.
    let vip = unsafe { XLB_VIPS.get(vk) }.ok_or(Verdict::Fragment)?;
    if !decision::balances_fragments(vip.flags) {
        return Err(Verdict::Fragment);
    }
    Ok(vip)
}

/// An echo request to a VIP address: answered here (XDP_TX) when the
/// address allows ping, the request has a bare IP header and a source that
/// may be answered, within this CPU's rate limit; otherwise the kernel's,
/// as before xlb answered pings.
#[inline(always)]
fn answer_ping(
    ctx: &XdpContext,
    ip: &Ip,
    key: &FlowKey,
    marker: &VipInfo,
) -> Result<(Verdict, u32), Verdict> {
    if !decision::answers_ping(marker)
        || !icmp_packet::answerable_echo(ip)
        || !icmp::may_answer(key.family(), key.src16())
    {
        return Err(Verdict::NotVip);
    }
    let now_ns = clock::now_ns(&XLB_CLOCK);
    if !icmp_allowed(ICMP_BUCKET_ECHO, now_ns) {
        return Err(Verdict::IcmpEchoLimited);
    }
    if !icmp_packet::answer_echo(ctx, ip) {
        return Err(Verdict::Internal);
    }
    Ok((Verdict::IcmpEchoReply, xdp_action::XDP_TX))
}

/// Whether this CPU's bucket `slot` of `XLB_ICMP_LIMIT` allows one more
/// message at `now_ns` under the configured rate (and spends it).
#[inline(always)]
fn icmp_allowed(slot: u32, now_ns: u64) -> bool {
    let Some(cfg) = XLB_CONFIG.get(0) else {
        return false;
    };
    let Some(bucket) = XLB_ICMP_LIMIT.get_ptr_mut(slot) else {
        return false;
    };
    // SAFETY: this CPU's own slot; nothing else writes it while we run.
    unsafe { (*bucket).take(now_ns, cfg.icmp_rate()) }
}

/// The VIP key of a flow's destination, built in `buf` without libcalls.
#[inline(always)]
fn vip_key<'a>(buf: &'a mut MaybeUninit<mem::Aligned<VipKey>>, key: &FlowKey) -> &'a mut VipKey {
    // SAFETY: VipKey is byte arrays and bytes: all-zero is valid.
    let vk = unsafe { mem::zeroed(buf) };
    vk.set_to_flow_destination(key);
    vk
}

/// The backend of the connection-table entry `flow` (looked up by
/// `try_balance`: `flow_entry`) while `decision::follows_flow_entry` accepts
/// it (a live, healthy backend of this VIP; not for a new TCP connection;
/// not an expired UDP entry); `None` sends the packet to the VIP's table
/// (`pick_by_table`). A followed entry's source is checked against the
/// VIP's prefixes (`check_source`) only when the entry was not checked under
/// the VIP's current access generation. Only the flow's own packets write
/// the entry (its generation, a UDP entry's age): an ICMP error about the
/// flow reads it as they would; a fragment has none.
#[inline(always)]
fn follow_entry(
    vip: &VipInfo,
    policy: &VipPolicy,
    key: &FlowKey,
    flow: Option<FlowEntry>,
    packet: &PacketFacts,
    carrier: Carrier,
) -> Result<Option<(u32, &'static Backend)>, Verdict> {
    if !consults_flow_table(vip.flags, packet) {
        return Ok(None);
    }
    let Some(FlowEntry {
        value: flow,
        backend_id: id,
        backend: b,
    }) = flow
    else {
        return Ok(None);
    };
    // SAFETY: a map value, valid for the whole run (see `FlowEntry`).
    let entry = unsafe { &*flow };
    if !follows_flow_entry(id, b, vip, entry, packet) {
        return Ok(None);
    }
    // An established flow pays the trie lookup once per change of the
    // VIP's prefixes, not once per packet.
    if !source_access_current(policy, entry) {
        check_source(vip.vip_id, policy, key)?;
        if carrier == Carrier::Flow {
            // SAFETY: as above; a racing CPU stamps the same generation or a
            // newer one it checked.
            unsafe { (*flow).access_generation = policy.access_generation };
        }
    }
    if carrier == Carrier::Flow && refreshes_flow_entry(vip, entry, packet) {
        // SAFETY: as above; a racing refresh by another CPU writes an
        // equally recent time.
        unsafe { (*flow).last_seen_ns = packet.now_ns };
    }
    Ok(Some((id, b)))
}

/// The backend the VIP's Maglev table gives a packet that follows no
/// entry (`hash`'s slot). Every such packet's source is checked against
/// the VIP's prefixes (`check_source`). A new connection of the flow itself
/// (`decision::is_new_connection`) must first fit the VIP's rate limits;
/// established flows are never limited, nor are ICMP errors and fragments,
/// which open no connection. The slot is remembered in the connection table
/// when `decision::creates_flow_entry` says so (not for a bare SYN or a RST)
/// and this CPU is not flooding; a bare SYN re-points an existing entry
/// (`decision::repins_flow_entry`). Only the flow's own packets write the
/// table; a fragment (no ports to key an entry) uses the slot alone.
#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "the fast path hands on what it already looked up (the global config \
              and the VIP's policy included) rather than looking it up again"
)]
fn pick_by_table(
    ctx: &XdpContext,
    cfg: &GlobalConfig,
    vip: &VipInfo,
    policy: &VipPolicy,
    key: &FlowKey,
    hash: u32,
    packet: &PacketFacts,
    carrier: Carrier,
) -> Result<(u32, &'static Backend), Verdict> {
    check_source(vip.vip_id, policy, key)?;

    let new_connection = carrier == Carrier::Flow && is_new_connection(vip.flags, packet);
    if new_connection {
        policy::admit_new_connection(
            &XLB_RATE_VIPS,
            &XLB_RATE_SRCS,
            vip.vip_id,
            policy,
            key,
            packet.now_ns,
        )
        .map_err(|reason| policy_drop(vip.vip_id, reason))?;
    }

    let slot = maglev_slot(vip, hash).ok_or(Verdict::NoBackend)?;
    let pair = XLB_MAGLEV.get(slot >> 1).ok_or(Verdict::Internal)?;
    let id = pair[(slot & 1) as usize];
    let Some(backend) = live_backend(id, vip.vip_id) else {
        debug!(
            ctx,
            "xlb: vip {} slot {} has no live backend ({})", vip.vip_id, slot, id
        );
        return Err(Verdict::NoBackend);
    };
    if carrier != Carrier::Flow {
        return Ok((id, backend));
    }

    if repins_flow_entry(vip.flags, packet) {
        // Read-only lookup first: an update of a missing key would take an
        // LRU node (and may evict a real entry) even when it fails.
        if let Some(flow) = XLB_FLOWS.get_ptr_mut(key) {
            // SAFETY: a map value, valid for the whole run; aligned 4- and
            // 8-byte stores, never torn for a concurrent reader.
            unsafe {
                if (*flow).backend_id != id {
                    (*flow).backend_id = id;
                    (*flow).last_seen_ns = packet.now_ns;
                    (*flow).access_generation = policy.access_generation;
                }
            }
        }
    }
    let inserted = creates_flow_entry(vip.flags, packet)
        && policy::flood_admits_insert(&XLB_FLOOD, packet.now_ns, cfg.flood_threshold())
        && remember_flow(key, id, packet.now_ns, policy.access_generation);
    // New flows: on a VIP with a connection table, the entries created (a
    // TCP connection once, by its handshake's ACK: spoofed SYNs and SYN
    // retransmits are not counted); without one, the bare SYNs balanced.
    let counted = if uses_flow_table(vip.flags) {
        inserted
    } else {
        new_connection
    };
    if counted {
        if let Some(s) = XLB_VIP_STATS.get_ptr_mut(vip.vip_id) {
            // SAFETY: per-CPU slot.
            unsafe { (*s).new_flows += 1 };
        }
    }
    Ok((id, backend))
}

/// Writes the flow's connection-table entry (backend `id`, seen now). True
/// for a flow that had no entry: that is what `new_flows` counts. An
/// entry replaced (a re-used 5-tuple, a flow moved off a failed backend, an
/// expired UDP flow) is not a new flow.
#[inline(always)]
fn remember_flow(key: &FlowKey, id: u32, now_ns: u64, access_generation: u32) -> bool {
    // The source passed `check_source` under this generation just now.
    let value = FlowValue::new(id, now_ns).with_access_generation(access_generation);
    if XLB_FLOWS.insert(key, value, BPF_NOEXIST as u64).is_ok() {
        return true;
    }
    // An insert failure (memory pressure) only costs the flow its pinning.
    let _ = XLB_FLOWS.insert(key, value, BPF_ANY as u64);
    false
}

/// The backend in slot `id` if `decision::is_live_backend` accepts it.
#[inline(always)]
fn live_backend(id: u32, vip_id: u32) -> Option<&'static Backend> {
    if id == NO_BACKEND {
        return None;
    }
    let b = XLB_BACKENDS.get(id)?;
    is_live_backend(id, b, vip_id).then_some(b)
}

/// A packet on its way to a backend: what `forward` needs of it.
struct Balanced<'a> {
    l2: &'a L2,
    ip: &'a Ip,
    /// The flow it is balanced as (for an ICMP error: the quoted flow).
    key: &'a FlowKey,
    hash: u32,
    now_ns: u64,
}

/// The verdict of the packet whose IP header (the client's, behind any
/// outer header) is at `l3_off`, of family `family`, sent toward its
/// backend, where a packet of the flow itself counts as `flow` (`tx`,
/// `redirect`, `fib_no_neigh`): an ICMP error (the only ICMP forwarded) as
/// `icmp_to_backend`, a fragment as `fragment_to_backend`. Read from the
/// packet rather than carried from `try_balance`'s `Carrier`: a kind the
/// verifier knows would make it walk all of `forward` once per kind of
/// packet, while bytes read from the packet are the same unknown to it in
/// every walk, so the kinds share one.
#[inline(always)]
fn sent_verdict(ctx: &XdpContext, l3_off: usize, family: u8, flow: Verdict) -> Verdict {
    let (proto, fragment) = parse::proto_and_fragment(ctx, l3_off, family);
    if fragment {
        Verdict::FragmentToBackend
    } else if proto == icmp::proto_of(family) {
        Verdict::IcmpToBackend
    } else {
        flow
    }
}

/// Step 4: hands the packet to `backend` the way its VIP's forwarding mode
/// says, in two halves shared by every mode: the route toward the backend
/// (whose source and length depend on the mode) and its exit from the FIB,
/// then the mode's own packet work (each in its own module). The halves are
/// joined by values the verifier need not tell apart (the route's source is
/// copied into one stack buffer, the mode's overhead is a length), so the
/// FIB, next-hop, too-big and transmit code is verified once, not once per
/// mode (the short path, `established`, walks its own copy of the cached
/// next hop, push and transmit). Flows, ICMP errors and fragments all
/// leave by their VIP's mode.
#[inline(always)]
fn forward(
    ctx: &XdpContext,
    cfg: &GlobalConfig,
    p: &Balanced,
    vip: &VipInfo,
    backend_id: u32,
    backend: &Backend,
) -> Result<(Verdict, u32), Verdict> {
    let (l2, ip) = (p.l2, p.ip);
    let mode = vip.forwarding_byte();
    if mode == FORWARDING_NAT {
        return Err(nat_program::hand_to_nat(ctx, backend_id));
    }
    let family = backend.family();
    // IPv4 addresses live in the first 4 bytes of the 16-byte buffer.
    let mut src_buf = MaybeUninit::<mem::Aligned<[u8; 16]>>::uninit();
    // SAFETY: a byte array: all-zero is valid.
    let src: &mut [u8; 16] = unsafe { mem::zeroed(&mut src_buf) };
    // The bytes the mode puts in front of the client's IP packet: what the
    // FIB's MTU check and a too-big answer must count. Computed without a
    // branch (`forwarding::overhead_of`), so the verifier walks the rest of
    // `forward` once for every mode and family instead of once per length.
    let overhead = forwarding::overhead_of(mode, family);
    match mode {
        // Encapsulated: from the outer source, the outer header added.
        FORWARDING_IPIP | FORWARDING_GUE => {
            if family == FAMILY_V4 {
                bytes::copy_v4(src, cfg.src_v4_octets().ok_or(Verdict::NoOuterSource)?);
            } else {
                bytes::copy(src, cfg.src_v6_octets().ok_or(Verdict::NoOuterSource)?);
            }
        }
        // The client's own packet. The config keeps l2-dsr backends in
        // their VIP's family. The FIB is asked from the unspecified source:
        // the question is only the backend's next hop, and the kernel
        // refuses lookups from some sources a client may send (an IPv6
        // multicast source makes it answer "not forwarded").
        FORWARDING_L2_DSR => {
            if family != ip.family {
                return Err(Verdict::Internal);
            }
        }
        _ => return Err(Verdict::Internal),
    }
    let len = ip.ip_len + overhead;
    if len > u16::MAX as usize {
        return Err(Verdict::TooBig);
    }
    let route = Route {
        family,
        src,
        dst: backend.addr16(),
        tos: ip.tos,
        len,
    };
    let ingress = ctx.ingress_ifindex() as u32;
    let (rc, hop) = next_hop(ctx, &route, backend_id, ingress, p.now_ns);
    if rc == fib_rc::FRAG_NEEDED {
        let to = TooBigTo {
            family: p.key.family(),
            sender: p.key.src16(),
            now_ns: p.now_ns,
        };
        return too_big(ctx, l2, ip, &to, hop.mtu, overhead);
    }
    let exit = exit_of(ctx, l2, rc, &hop, ingress)?;

    // What leaves is exactly the client's IP packet (no Ethernet padding
    // or trailing bytes), with whatever the mode puts in front.
    if !encap::trim_to(ctx, l2.l3_off + ip.ip_len) {
        return Err(Verdict::Internal);
    }
    match mode {
        FORWARDING_IPIP | FORWARDING_GUE => encapsulate(ctx, cfg, p, &route, vip, &exit)?,
        // FORWARDING_L2_DSR (the only other mode that got here).
        _ => {
            // Handed to the kernel, the packet would be routed toward the
            // VIP by the host's own table, not to the backend.
            if exit.how.is_none() {
                return Err(Verdict::L2NoNeigh);
            }
            if exit.off_link != 0 {
                return Err(Verdict::L2OffLink);
            }
            if !l2_dsr::set_macs(ctx, &exit.macs) {
                return Err(Verdict::Internal);
            }
        }
    }
    transmit(ctx, &exit, l2.l3_off + overhead, ip.family)
}

/// IP-in-IP or GUE along `route` (`encap`), the frame already trimmed to
/// the IP packet.
#[inline(always)]
fn encapsulate(
    ctx: &XdpContext,
    cfg: &GlobalConfig,
    p: &Balanced,
    route: &Route,
    vip: &VipInfo,
    exit: &Exit,
) -> Result<(), Verdict> {
    let outer = outer_header(route.family, route.src, route.dst, p.ip, cfg, vip, p.hash);
    if encap::push_outer(ctx, p.l2, &outer, &exit.macs) {
        Ok(())
    } else {
        Err(Verdict::Internal)
    }
}

/// The IP-in-IP or GUE header (by the VIP's mode) from `src` to `dst`
/// (of `family`) in front of the client's packet `ip`: the inner DSCP/ECN,
/// the configured TTL, the flow `hash` as an IPv6 flow label.
#[inline(always)]
fn outer_header<'a>(
    family: u8,
    src: &'a [u8; 16],
    dst: &'a [u8; 16],
    ip: &Ip,
    cfg: &GlobalConfig,
    vip: &VipInfo,
    hash: u32,
) -> Outer<'a> {
    Outer {
        family,
        src,
        dst,
        tos: ip.tos,
        ttl: cfg.outer_ttl(),
        flow_label: hash & 0x000f_ffff,
        inner_family: ip.family,
        inner_len: ip.ip_len,
        // GUE: a UDP header to the VIP's GUE port, its source port from
        // the VIP's flow hash like the IPv6 flow label (receive-side
        // scaling and ECMP see distinct flows; with client affinity the
        // hash, and so the port, is the client's).
        udp_len: encap::udp_len_of(vip.forwarding_byte()),
        udp_dport: vip.gue_port_be(),
        udp_sport: gue::source_port(hash),
    }
}

/// Counts a packet of `ip_len` bytes for VIP `vip_id` (`XLB_VIP_STATS`).
#[inline(always)]
fn count_vip_packet(vip_id: u32, ip_len: u64) {
    if let Some(s) = XLB_VIP_STATS.get_ptr_mut(vip_id) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += ip_len;
        }
    }
}

/// Counts a packet of `ip_len` bytes sent to backend `id` (`XLB_BE_STATS`).
#[inline(always)]
fn count_backend_packet(id: u32, ip_len: u64) {
    if let Some(s) = XLB_BE_STATS.get_ptr_mut(id) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += ip_len;
        }
    }
}

/// Where a frame toward a backend leaves: the next hop's MACs and how.
struct Exit {
    macs: MacPair,
    ifindex: u32,
    /// `None`: handed to the kernel, which resolves the next hop's MAC.
    how: Option<Egress>,
    /// 0 when the destination itself is the next hop (no gateway).
    off_link: u8,
}

/// Turns a FIB answer (other than FRAG_NEEDED, which `forward` answers)
/// into an exit, or the verdict of a frame that cannot leave. The frame
/// keeps its VLAN tag: `decision::egress` lets it leave only on the VLAN it
/// came in on, before anything is written.
#[inline(always)]
fn exit_of(
    ctx: &XdpContext,
    l2: &L2,
    rc: i64,
    hop: &NextHop,
    ingress: u32,
) -> Result<Exit, Verdict> {
    match rc {
        fib_rc::SUCCESS => {
            let how = decision::egress(ingress, l2.vlan_tpid, l2.vlan_tci, hop.ifindex, &hop.vlan);
            if how == Egress::VlanMismatch {
                return Err(Verdict::VlanMismatch);
            }
            Ok(Exit {
                macs: hop.macs,
                ifindex: hop.ifindex,
                how: Some(how),
                off_link: hop.off_link,
            })
        }
        // Hand the packet to the kernel: it forwards it and, on the way,
        // resolves the neighbour the next packets will use. The frame keeps
        // its original MACs: its destination is this host's own MAC, so the
        // stack accepts it instead of dropping it as OTHERHOST.
        fib_rc::NO_NEIGH => {
            let macs = original_macs(ctx).ok_or(Verdict::Internal)?;
            Ok(Exit {
                macs,
                ifindex: ingress,
                how: None,
                off_link: 0,
            })
        }
        _ => {
            debug!(ctx, "xlb: fib lookup toward backend failed: rc {}", rc);
            Err(Verdict::FibUnreachable)
        }
    }
}

/// The verdict and XDP action of a frame written for `exit`, whose client
/// IP packet (of `family`) starts at `inner` (`sent_verdict`).
#[inline(always)]
fn transmit(
    ctx: &XdpContext,
    exit: &Exit,
    inner: usize,
    family: u8,
) -> Result<(Verdict, u32), Verdict> {
    let sent = |flow| sent_verdict(ctx, inner, family, flow);
    match exit.how {
        None => Ok((sent(Verdict::FibNoNeigh), xdp_action::XDP_PASS)),
        Some(Egress::Tx) => Ok((sent(Verdict::Tx), xdp_action::XDP_TX)),
        // Only an ordinary device in `XLB_TX_PORTS` (never a VLAN device,
        // which has no XDP transmit): the kernel may still fail the
        // redirect after we return, see `Verdict::Redirect`.
        Some(_) => match XLB_TX_PORTS.redirect(exit.ifindex, 0) {
            Ok(action) => Ok((sent(Verdict::Redirect), action)),
            Err(_) => Err(Verdict::RedirectFailed),
        },
    }
}

/// A packet too big for the path to its backend once its VIP's mode has
/// put `overhead` bytes in front of it (the outer header of `ipip`/`gue`,
/// nothing for `l2-dsr`), on an egress of `egress_mtu`. Its sender learns
/// the MTU to use from an ICMP error sent back the way the packet came,
/// within this CPU's rate limit; a packet that may get no error (an ICMP
/// error itself, IPv4 without DF or a later IPv4 fragment, a source that is
/// not unicast, a path below the family's minimum MTU) is dropped
/// (`too_big`). `lb_common::icmp` has the rules.
/// NAT packets too big for their egress get the same answer
/// (`nat_program`).
#[inline(always)]
fn too_big(
    ctx: &XdpContext,
    l2: &L2,
    ip: &Ip,
    to: &TooBigTo,
    egress_mtu: u32,
    overhead: usize,
) -> Result<(Verdict, u32), Verdict> {
    let mtu = icmp::too_big_mtu(ip.family, egress_mtu, overhead as u32);
    let mtu = mtu.ok_or(Verdict::TooBig)?;
    if !icmp::may_answer(to.family, to.sender) || !icmp_packet::wants_too_big(ctx, ip) {
        return Err(Verdict::TooBig);
    }
    if !icmp_allowed(ICMP_BUCKET_TOO_BIG, to.now_ns) {
        return Err(Verdict::IcmpTooBigLimited);
    }
    if !icmp_packet::send_too_big(ctx, l2, ip, mtu) {
        return Err(Verdict::Internal);
    }
    Ok((Verdict::IcmpTooBigSent, xdp_action::XDP_TX))
}

/// Whom `too_big` answers: the sender of the packet (for an ICMP error
/// carried to a backend, the flow it quotes), and the time for the rate
/// limit.
struct TooBigTo<'a> {
    family: u8,
    sender: &'a [u8; 16],
    now_ns: u64,
}

/// The FIB's answer toward backend `id`, from this CPU's cache while it is
/// fresh and the packet is no longer than one the FIB's MTU check accepted;
/// otherwise from the FIB (successful answers are cached). The FIB lookup is
/// the largest single cost of the fast path; routes and neighbours change
/// rarely, and a change takes effect within `NEXTHOP_TTL_NS`.
#[inline(always)]
fn next_hop(ctx: &XdpContext, route: &Route, id: u32, ingress: u32, now: u64) -> (i64, NextHop) {
    let len = route.len as u16;
    let cached = XLB_NEXTHOPS.get_ptr_mut(id);
    if let Some(c) = cached {
        // SAFETY: this CPU's own slot; nothing else writes it while we run.
        let c = unsafe { &*c };
        if c.serves(now, route.len) {
            return (
                fib_rc::SUCCESS,
                NextHop {
                    ifindex: c.ifindex,
                    macs: c.macs(),
                    vlan: c.egress_vlan,
                    off_link: c.off_link,
                    mtu: 0,
                },
            );
        }
    }
    let (rc, hop) = fib_hop(ctx, route, ingress);
    if rc == fib_rc::SUCCESS {
        if let Some(c) = cached {
            // SAFETY: this CPU's own slot.
            unsafe {
                (*c).egress_vlan = hop.vlan;
                (*c).expires_ns = now + NEXTHOP_TTL_NS;
                (*c).ifindex = hop.ifindex;
                (*c).checked_len = len;
                (*c).off_link = hop.off_link;
                (*c).set_macs(&hop.macs);
            }
        }
    }
    (rc, hop)
}

/// The FIB's answer along `route`, with the egress device's VLAN: the FIB
/// says nothing of VLANs, whether the egress is a VLAN device (and which)
/// comes from the daemon's `XLB_VLANS`.
#[inline(always)]
fn fib_hop(ctx: &XdpContext, route: &Route, ingress: u32) -> (i64, NextHop) {
    let (rc, mut hop) = encap::fib_lookup_route(ctx, route, ingress);
    if rc == fib_rc::SUCCESS {
        if let Some(v) = XLB_VLANS.get_ptr(hop.ifindex) {
            // SAFETY: a map value, replaced whole by the daemon.
            hop.vlan = unsafe { *v };
        }
    }
    (rc, hop)
}

/// The MACs of the frame as received.
#[inline(always)]
fn original_macs(ctx: &XdpContext) -> Option<MacPair> {
    // SAFETY: EthHdr is plain data at offset 0, read by value; no other
    // reference into the packet is alive.
    let eth = unsafe { ref_at::<network_types::eth::EthHdr>(ctx, 0) }.ok()?;
    Some(MacPair::new(&eth.src_addr, &eth.dst_addr))
}

lb_ebpf::xdp_object!();
