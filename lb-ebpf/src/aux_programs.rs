//! Small XDP programs that are not the balancer:
//! - `xlb_pass`: XDP_PASS at once. Attached in native mode to the peer of a veth
//!   whose other end XDP_TXes (a veth only delivers XDP_TX frames to a peer that
//!   runs a native XDP program), and the benchmarks' "do nothing" floor.
//! - `xlb_floor_tx`: parses Ethernet/IPv4/TCP, swaps MACs, XDP_TX: the cheapest
//!   possible forwarder, the benchmarks' floor for the balancer.
//! - `xlb_count_drop`: counts and drops; the benchmark sink.
//! - `xlb_gen`: the end-to-end benchmark's traffic generator (live-frames test
//!   runs): writes a template frame over the packet, gives it the next source
//!   port of a cycle (fixing the L4 checksum) and transmits it (XDP_TX).
//! - `xlb_fwd_floor`: the end-to-end benchmark's XDP forwarding floor: writes
//!   the next hop's MACs and redirects to the egress port, nothing else.
//! - `xlb_floor_lb`, `xlb_floor_lb16`: the per-packet benchmark's "essential
//!   work" floors (`lb_common::floor_lb`): what any hash-map-based L4 balancer
//!   does for an established IPv4 TCP flow (VIP lookup, connection lookup,
//!   backend read, IP-in-IP push, XDP_TX), with a 40-byte and a 16-byte
//!   connection key; `xlb_floor_entry`: the same in xlb's order (connection
//!   first, the VIP through its backend's VIP id, no VIP hash lookup);
//!   `xlb_floor_min` / `xlb_floor_min6`: the least any balancer with a
//!   connection table does; `xlb_floor_full`: xlb's own per-packet duties on
//!   an established flow, written straight for that case; `xlb_floor_e2e`:
//!   the end-to-end benchmark's balancer floor.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::{xdp_action, BPF_F_NO_COMMON_LRU},
    macros::{map, xdp},
    maps::{Array, DevMap, HashMap, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use lb_common::{
    bytes,
    decision::{self, follows_flow_entry, Egress, PacketFacts},
    floor_lb::{FloorLbHop, FlowKey16, FLOOR_E2E_BACKENDS, HOP_SLOT_V6},
    forwarding::{self, FORWARDING_IPIP},
    gen_frame::{GenFrame, GEN_LEN, IP_CSUM_OFF, SPORT_OFF, SRC_LOW_OFF},
    policy::source_access_current,
    vip_filter_slot, Backend, BackendStats, CachedHop, ClockCache, FlowKey, FlowValue,
    GlobalConfig, VipInfo, VipKey, VipPolicy, VipSlot, DEFAULT_OUTER_TTL, FAMILY_V4, FAMILY_V6,
    PROTO_TCP, PROTO_UDP, VIP_FILTER_WORDS,
};
use lb_ebpf::{
    clock,
    encap::{self, Outer},
    mem,
    packet::{mut_at, ref_at},
    parse::{self, L4Status, ETH_P_IPV4, ETH_P_IPV6, L2},
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
};

/// Slot 0: packets seen by `xlb_count_drop`.
#[map]
static XLB_SINK_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// `xlb_gen`'s frame template (slot 0), written by the benchmark.
#[map]
static XLB_GEN_FRAME: Array<GenFrame> = Array::with_max_entries(1, 0);

/// Frames `xlb_gen` has built, per CPU (selects the source port).
#[map]
static XLB_GEN_SEQ: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Writes the template over the frame (every byte of it: live-frames test
/// runs recycle pages with whatever the downstream hops wrote into them), sets
/// the next source port (and, for a template that varies it, the low bits of
/// the source address and the IPv4 header checksum) and the matching L4
/// checksum (RFC 1624 incremental update of the template's), and transmits
/// it. The arithmetic is
/// `lb_common::gen_frame`'s, which the benchmark calls too.
#[xdp]
pub fn xlb_gen(ctx: XdpContext) -> u32 {
    generate(&ctx).unwrap_or(xdp_action::XDP_DROP)
}

#[inline(always)]
fn generate(ctx: &XdpContext) -> Option<u32> {
    let t = XLB_GEN_FRAME.get(0)?;
    // SAFETY: plain bytes at offset 0, the only reference into the packet.
    // (The frame starts at the page's headroom, 8-byte aligned: the word
    // stores below are aligned.)
    let p = unsafe { mut_at::<[u8; GEN_LEN]>(ctx, 0) }
        .ok()?
        .as_mut_ptr();
    // Word by word through a reference into the map value: copying the
    // template by value would be a memcpy, which the eBPF target turns into
    // a byte loop.
    let words = t.words();
    // SAFETY: seven 8-byte words and one 4-byte word: bytes 0..60.
    unsafe {
        let w = p.cast::<u64>();
        let mut i = 0;
        while i < GEN_LEN / 8 {
            core::ptr::write_volatile(w.add(i), words[i]);
            i += 1;
        }
        core::ptr::write_volatile(p.add(56).cast::<u32>(), words[7] as u32);
    }
    let seq = XLB_GEN_SEQ.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot.
    let n = unsafe {
        let n = *seq;
        *seq = n.wrapping_add(1);
        n
    };
    let sport = t.sport_of_frame(n);
    let csum = if t.varies_source() {
        // A spoofed source of the template's prefix: the address word and
        // the IPv4 header checksum change, and the L4 checksum with them
        // (the address is in its pseudo-header).
        let low = t.src_low_of_frame(n);
        let [a0, a1] = low.to_be_bytes();
        let [h0, h1] = t.ip_csum_with_src(low).to_be_bytes();
        // SAFETY: all four offsets are below GEN_LEN, checked above.
        unsafe {
            core::ptr::write_volatile(p.add(SRC_LOW_OFF), a0);
            core::ptr::write_volatile(p.add(SRC_LOW_OFF + 1), a1);
            core::ptr::write_volatile(p.add(IP_CSUM_OFF), h0);
            core::ptr::write_volatile(p.add(IP_CSUM_OFF + 1), h1);
        }
        t.csum_with(sport, low)
    } else {
        t.csum_with_sport(sport)
    };
    let csum_off = t.csum_offset();
    let [s0, s1] = sport.to_be_bytes();
    let [c0, c1] = csum.to_be_bytes();
    // SAFETY: all four offsets are below GEN_LEN, checked above.
    unsafe {
        core::ptr::write_volatile(p.add(SPORT_OFF), s0);
        core::ptr::write_volatile(p.add(SPORT_OFF + 1), s1);
        core::ptr::write_volatile(p.add(csum_off), c0);
        core::ptr::write_volatile(p.add(csum_off + 1), c1);
    }
    Some(xdp_action::XDP_TX)
}

#[xdp]
pub fn xlb_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[xdp]
pub fn xlb_floor_tx(ctx: XdpContext) -> u32 {
    floor_tx(&ctx).unwrap_or(xdp_action::XDP_PASS)
}

#[inline(always)]
fn floor_tx(ctx: &XdpContext) -> Option<u32> {
    // SAFETY: Ipv4Hdr is byte arrays after the 14-byte Ethernet header;
    // shared references only until `eth` below.
    let ip = unsafe { ref_at::<Ipv4Hdr>(ctx, EthHdr::LEN) }.ok()?;
    if ip.proto != PROTO_TCP {
        return None;
    }
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    // SAFETY: as above, for TcpHdr (bounds only: the header is not read).
    unsafe { ref_at::<TcpHdr>(ctx, EthHdr::LEN + ihl) }.ok()?;
    // SAFETY: EthHdr is plain data at offset 0; `ip` is no longer used.
    let eth = unsafe { mut_at::<EthHdr>(ctx, 0) }.ok()?;
    if u16::from_be(eth.ether_type) != ETH_P_IPV4 {
        return None;
    }
    core::mem::swap(&mut eth.dst_addr, &mut eth.src_addr);
    Some(xdp_action::XDP_TX)
}

/// `xlb_fwd_floor`'s next hop: destination MAC then source MAC (12 bytes) as
/// two native-endian words, the second's upper half zero
/// (`lb_common::fwd_floor::macs_words`).
#[map]
static XLB_FWD_MACS: Array<[u64; 2]> = Array::with_max_entries(1, 0);

/// `xlb_fwd_floor`'s egress port (slot 0).
#[map]
static XLB_FWD_PORT: DevMap = DevMap::with_max_entries(1, 0);

/// The least an XDP forwarder does: the next hop's MACs over the frame's,
/// then a redirect to the egress port. No parsing, lookup or counting: the
/// end-to-end benchmark's floor for XDP forwarding in its topology.
#[xdp]
pub fn xlb_fwd_floor(ctx: XdpContext) -> u32 {
    fwd_floor(&ctx).unwrap_or(xdp_action::XDP_DROP)
}

#[inline(always)]
fn fwd_floor(ctx: &XdpContext) -> Option<u32> {
    let macs = XLB_FWD_MACS.get(0)?;
    // SAFETY: 12 plain bytes at offset 0 (the two MACs), the only reference
    // into the packet. (The frame starts at the page's headroom, 8-byte
    // aligned: the word stores below are aligned.)
    let eth = unsafe { mut_at::<[u8; 12]>(ctx, 0) }.ok()?.as_mut_ptr();
    // SAFETY: one 8-byte and one 4-byte word, bytes 0..12: two stores
    // instead of twelve byte stores.
    unsafe {
        core::ptr::write_volatile(eth.cast::<u64>(), macs[0]);
        core::ptr::write_volatile(eth.add(8).cast::<u32>(), macs[1] as u32);
    }
    XLB_FWD_PORT.redirect(0, 0).ok()
}

/// The essential-work floors' VIPs (both programs).
#[map]
static XLB_FLB_VIPS: HashMap<VipKey, VipInfo> = HashMap::with_max_entries(16, 0);

/// `xlb_floor_lb`'s connection table, shaped like the balancer's
/// `XLB_FLOWS` (40-byte key, per-CPU LRU lists). Small: the benchmark holds
/// one flow, and every load of this object (tests attach `xlb_pass` from it)
/// preallocates the whole map.
#[map]
static XLB_FLB_FLOWS: LruHashMap<FlowKey, FlowValue> =
    LruHashMap::with_max_entries(1024, BPF_F_NO_COMMON_LRU);

/// `xlb_floor_lb16`'s connection table: the same with the 16-byte key.
#[map]
static XLB_FLB_FLOWS16: LruHashMap<FlowKey16, FlowValue> =
    LruHashMap::with_max_entries(1024, BPF_F_NO_COMMON_LRU);

/// The essential-work floors' backends by id (both programs).
#[map]
static XLB_FLB_BES: Array<Backend> = Array::with_max_entries(16, 0);

/// `xlb_floor_entry`'s VIP config index by VIP id and its VIPs by index,
/// arrays like the balancer's `XLB_VIP_CFG_IX` and `XLB_VIP_CFG`.
#[map]
static XLB_FLB_CFG_IX: Array<u64> = Array::with_max_entries(16, 0);

#[map]
static XLB_FLB_CFG: Array<VipSlot> = Array::with_max_entries(16, 0);

/// `xlb_floor_min`'s VIPs by id: an array, read inline without a helper
/// call (written in place: a floor may ignore tearing, the balancer may not).
#[map]
static XLB_FLB_VIPARR: Array<VipInfo> = Array::with_max_entries(16, 0);

/// Outer source and MACs of every packet the floors send (slot 0; the
/// IPv6 floor's in `HOP_SLOT_V6`).
#[map]
static XLB_FLB_HOP: Array<FloorLbHop> = Array::with_max_entries(2, 0);

/// Essential work with the balancer's 40-byte connection key.
#[xdp]
pub fn xlb_floor_lb(ctx: XdpContext) -> u32 {
    floor_lb(&ctx, &XLB_FLB_FLOWS).unwrap_or(xdp_action::XDP_PASS)
}

/// Essential work with a 16-byte IPv4 connection key.
#[xdp]
pub fn xlb_floor_lb16(ctx: XdpContext) -> u32 {
    floor_lb(&ctx, &XLB_FLB_FLOWS16).unwrap_or(xdp_action::XDP_PASS)
}

/// Essential work of xlb's design: the connection first, the VIP through
/// its backend's VIP id (no hash lookup of the VIP key).
#[xdp]
pub fn xlb_floor_entry(ctx: XdpContext) -> u32 {
    floor_entry(&ctx).unwrap_or(xdp_action::XDP_PASS)
}

/// The least work of a balancer that keeps connections and answers to its
/// configuration: one connection lookup with the cheapest key (16 bytes),
/// the backend it names, that backend's VIP by id (its forwarding mode),
/// the push. One helper lookup, two inline array reads.
#[xdp]
pub fn xlb_floor_min(ctx: XdpContext) -> u32 {
    floor_min(&ctx).unwrap_or(xdp_action::XDP_PASS)
}

/// `xlb_floor_e2e`'s connection table (16-byte key, per-CPU LRU lists),
/// sized like the balancer's by the end-to-end benchmark at load time: its
/// memory per flow is part of what that floor measures. Filled by the
/// packets, as the balancer's is (where an entry lies in memory follows
/// the order flows arrive in).
#[map]
static XLB_FLB_E2EFL: LruHashMap<FlowKey16, FlowValue> =
    LruHashMap::with_max_entries(1024, BPF_F_NO_COMMON_LRU);

/// `xlb_floor_min` for an IPv6 TCP flow (`lb_common::floor_lb::PROGRAM_MIN6`).
#[xdp]
pub fn xlb_floor_min6(ctx: XdpContext) -> u32 {
    floor_min6(&ctx).unwrap_or(xdp_action::XDP_PASS)
}

/// The IPv6 flow's 40-byte key in `xlb_floor_lb`'s table (the smallest key
/// with two IPv6 addresses), its backend, the backend's VIP (IP-in-IP
/// only), a 40-byte IPv6 outer header with flow label 0 (the balancer puts
/// the flow hash there), XDP_TX.
#[inline(always)]
fn floor_min6(ctx: &XdpContext) -> Option<u32> {
    let mut key_buf = MaybeUninit::<mem::Aligned<FlowKey>>::uninit();
    // SAFETY: FlowKey is byte arrays and bytes: all-zero is valid.
    let key: &mut FlowKey = unsafe { mem::zeroed(&mut key_buf) };
    // SAFETY: EthHdr is plain data at offset 0 (shared, read only).
    let eth = unsafe { ref_at::<EthHdr>(ctx, 0) }.ok()?;
    if u16::from_be(eth.ether_type) != ETH_P_IPV6 {
        return None;
    }
    // SAFETY: Ipv6Hdr is byte arrays after the Ethernet header; shared
    // references only, dead before the packet moves.
    let ip = unsafe { ref_at::<Ipv6Hdr>(ctx, EthHdr::LEN) }.ok()?;
    if ip.next_hdr != PROTO_TCP {
        return None;
    }
    // SAFETY: as above, for TcpHdr right after the fixed IPv6 header.
    let tcp = unsafe { ref_at::<TcpHdr>(ctx, EthHdr::LEN + Ipv6Hdr::LEN) }.ok()?;
    key.set_v6(&ip.src_addr, &ip.dst_addr);
    key.set_proto(PROTO_TCP);
    key.set_ports(tcp.source, tcp.dest);
    let tos = (ip.vcf[0] << 4) | (ip.vcf[1] >> 4);
    let inner_len = Ipv6Hdr::LEN + u16::from_be_bytes(ip.payload_len) as usize;
    let key: &FlowKey = key;
    // SAFETY: see `floor_lb`.
    let entry = unsafe { XLB_FLB_FLOWS.get(key) }?;
    let backend = XLB_FLB_BES.get(entry.backend_id)?;
    let vip = XLB_FLB_VIPARR.get(backend.vip_id)?;
    if vip.forwarding_byte() != FORWARDING_IPIP {
        return None;
    }
    push_toward(ctx, backend, FAMILY_V6, tos, inner_len)
}

/// `xlb_floor_min`'s work on the end-to-end benchmark's UDP and TCP frames,
/// sent on the way `xlb_fwd_floor` sends them (redirect to its egress
/// port): the end to end floor of a balancer with a connection table.
#[xdp]
pub fn xlb_floor_e2e(ctx: XdpContext) -> u32 {
    floor_e2e(&ctx).unwrap_or(xdp_action::XDP_DROP)
}

/// The 16-byte key of a TCP or UDP packet's entry, the backend it names,
/// the backend's VIP (IP-in-IP only), the push, the redirect. A flow
/// without an entry gets one (backend 1 + source port mod
/// [`FLOOR_E2E_BACKENDS`]): in the measured steady state every flow has one.
#[inline(always)]
fn floor_e2e(ctx: &XdpContext) -> Option<u32> {
    let mut key_buf = MaybeUninit::<mem::Aligned<FlowKey16>>::uninit();
    // SAFETY: FlowKey16 is byte arrays and bytes: all-zero is valid.
    let key: &mut FlowKey16 = unsafe { mem::zeroed(&mut key_buf) };
    // SAFETY: EthHdr is plain data at offset 0 (shared, read only).
    let eth = unsafe { ref_at::<EthHdr>(ctx, 0) }.ok()?;
    if u16::from_be(eth.ether_type) != ETH_P_IPV4 {
        return None;
    }
    // SAFETY: Ipv4Hdr is byte arrays after the 14-byte Ethernet header;
    // shared references only, dead before the packet moves.
    let ip = unsafe { ref_at::<Ipv4Hdr>(ctx, EthHdr::LEN) }.ok()?;
    if ip.proto != PROTO_TCP && ip.proto != PROTO_UDP {
        return None;
    }
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    if ihl < Ipv4Hdr::LEN {
        return None;
    }
    // SAFETY: as above: the ports, the first 4 bytes of TCP and UDP.
    let ports = unsafe { ref_at::<[u8; 4]>(ctx, EthHdr::LEN + ihl) }.ok()?;
    key.set(
        &ip.src_addr,
        &ip.dst_addr,
        ip.proto,
        [ports[0], ports[1]],
        [ports[2], ports[3]],
    );
    let (tos, inner_len) = (ip.tos, u16::from_be_bytes(ip.tot_len) as usize);
    let key: &FlowKey16 = key;
    // SAFETY: see `floor_lb`.
    let backend_id = match unsafe { XLB_FLB_E2EFL.get(key) } {
        Some(entry) => entry.backend_id,
        None => {
            let id = 1 + u32::from(u16::from_be_bytes([ports[0], ports[1]])) % FLOOR_E2E_BACKENDS;
            XLB_FLB_E2EFL.insert(key, FlowValue::new(id, 0), 0).ok()?;
            id
        }
    };
    let backend = XLB_FLB_BES.get(backend_id)?;
    let vip = XLB_FLB_VIPARR.get(backend.vip_id)?;
    if vip.forwarding_byte() != FORWARDING_IPIP {
        return None;
    }
    push_toward(ctx, backend, FAMILY_V4, tos, inner_len)?;
    XLB_FWD_PORT.redirect(0, 0).ok()
}

/// A connection-table key the floors can build from the headers: the only
/// thing in which `xlb_floor_lb` and `xlb_floor_lb16` differ.
trait ConnKey {
    /// Fills `self` (zeroed) from the IPv4 header and the ports as on the wire.
    fn fill(&mut self, ip: &Ipv4Hdr, sport: [u8; 2], dport: [u8; 2]);
    /// Turns `vk` (zeroed) into the key of the VIP the flow is sent to.
    fn vip_key(&self, vk: &mut VipKey);
}

impl ConnKey for FlowKey {
    /// As the balancer builds it (`parse::parse_ipv4`, `parse_ports`).
    #[inline(always)]
    fn fill(&mut self, ip: &Ipv4Hdr, sport: [u8; 2], dport: [u8; 2]) {
        self.set_v4(&ip.src_addr, &ip.dst_addr);
        self.set_proto(ip.proto);
        self.set_ports(sport, dport);
    }

    #[inline(always)]
    fn vip_key(&self, vk: &mut VipKey) {
        vk.set_to_flow_destination(self);
    }
}

impl ConnKey for FlowKey16 {
    #[inline(always)]
    fn fill(&mut self, ip: &Ipv4Hdr, sport: [u8; 2], dport: [u8; 2]) {
        self.set(&ip.src_addr, &ip.dst_addr, ip.proto, sport, dport);
    }

    #[inline(always)]
    fn vip_key(&self, vk: &mut VipKey) {
        vk.set_v4_destination(self.dst(), self.dport_be(), self.proto());
    }
}

/// The essential work: the checks of `floor_tx`, the three lookups every
/// established packet of a hash-map balancer needs (is it a VIP, which
/// backend has the connection, where is that backend), and the balancer's own
/// IP-in-IP push (`encap::push_outer`, so the header writing costs what it
/// costs there). Left out on purpose, to see the floor under them: stats,
/// clock, policy, the FIB and its cache, flow-entry checks, trimming of
/// Ethernet padding.
#[inline(always)]
fn floor_lb<K: ConnKey>(ctx: &XdpContext, flows: &LruHashMap<K, FlowValue>) -> Option<u32> {
    // Keys in zeroed, aligned stack memory, as the balancer builds them: a
    // struct initialiser would become a memset libcall (byte loop).
    let mut key_buf = MaybeUninit::<mem::Aligned<K>>::uninit();
    // SAFETY: both key types are byte arrays and bytes: all-zero is valid.
    let key: &mut K = unsafe { mem::zeroed(&mut key_buf) };
    let (tos, inner_len) = parse_flow(ctx, &mut *key)?;
    let mut vk_buf = MaybeUninit::<mem::Aligned<VipKey>>::uninit();
    // SAFETY: VipKey is byte arrays and bytes: all-zero is valid.
    let vk: &mut VipKey = unsafe { mem::zeroed(&mut vk_buf) };
    key.vip_key(vk);
    // SAFETY: map values are plain data; an update replaces a whole element
    // (hash map RCU), it never tears one. Only presence is used here.
    unsafe { XLB_FLB_VIPS.get(vk) }?;
    // SAFETY: as above.
    let entry = unsafe { flows.get(key) }?;
    let backend = XLB_FLB_BES.get(entry.backend_id)?;
    push_toward(ctx, backend, FAMILY_V4, tos, inner_len)
}

/// `floor_lb` as xlb's fast path orders it: the connection's entry, its
/// backend, and the VIP from the backend's VIP id, taken only when it is
/// the packet's exact VIP (`VipSlot::is_exact_vip_of`, as the balancer
/// checks it), reached by index as the balancer reaches it: array reads
/// replace the VIP key's hash lookup.
#[inline(always)]
fn floor_entry(ctx: &XdpContext) -> Option<u32> {
    let mut key_buf = MaybeUninit::<mem::Aligned<FlowKey>>::uninit();
    // SAFETY: FlowKey is byte arrays and bytes: all-zero is valid.
    let key: &mut FlowKey = unsafe { mem::zeroed(&mut key_buf) };
    let (tos, inner_len) = parse_flow(ctx, &mut *key)?;
    let key: &FlowKey = key;
    // SAFETY: see `floor_lb`.
    let entry = unsafe { XLB_FLB_FLOWS.get(key) }?;
    let backend = XLB_FLB_BES.get(entry.backend_id)?;
    let index = XLB_FLB_CFG_IX.get(backend.vip_id)?;
    // SAFETY: a valid, aligned map value.
    let index = unsafe { core::ptr::read_volatile(index) };
    let slot = XLB_FLB_CFG.get(index as u32)?;
    if !slot.is_exact_vip_of(key) {
        return None;
    }
    push_toward(ctx, backend, FAMILY_V4, tos, inner_len)
}

/// `floor_min`: the connection's entry names the backend, the backend its
/// VIP; the VIP's mode must be IP-in-IP (the only one the floors write).
/// No VIP-key lookup and no exact-VIP check: the entry is trusted, which a
/// balancer whose VIP ids are handed on cannot do.
#[inline(always)]
fn floor_min(ctx: &XdpContext) -> Option<u32> {
    let mut key_buf = MaybeUninit::<mem::Aligned<FlowKey16>>::uninit();
    // SAFETY: FlowKey16 is byte arrays and bytes: all-zero is valid.
    let key: &mut FlowKey16 = unsafe { mem::zeroed(&mut key_buf) };
    let (tos, inner_len) = parse_flow(ctx, &mut *key)?;
    let key: &FlowKey16 = key;
    // SAFETY: see `floor_lb`.
    let entry = unsafe { XLB_FLB_FLOWS16.get(key) }?;
    let backend = XLB_FLB_BES.get(entry.backend_id)?;
    let vip = XLB_FLB_VIPARR.get(backend.vip_id)?;
    if vip.forwarding_byte() != FORWARDING_IPIP {
        return None;
    }
    push_toward(ctx, backend, FAMILY_V4, tos, inner_len)
}

/// `xlb_floor_full`'s maps: what the balancer's required checks and
/// counters read, one of each (`lb_common::floor_lb::FULL_*`).
#[map]
static XLB_FLB_FILTER: Array<u64> = Array::with_max_entries(VIP_FILTER_WORDS, 0);

#[map]
static XLB_FLB_POLICY: Array<VipPolicy> = Array::with_max_entries(16, 0);

#[map]
static XLB_FLB_CONFIG: Array<GlobalConfig> = Array::with_max_entries(1, 0);

#[map]
static XLB_FLB_CLOCK: PerCpuArray<ClockCache> = PerCpuArray::with_max_entries(1, 0);

#[map]
static XLB_FLB_NHOPS: PerCpuArray<CachedHop> = PerCpuArray::with_max_entries(16, 0);

#[map]
static XLB_FLB_BESTAT: PerCpuArray<BackendStats> = PerCpuArray::with_max_entries(16, 0);

#[map]
static XLB_FLB_VERD: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

/// The balancer's required work for an established TCP flow to an IP-in-IP
/// VIP, written straight for that one case
/// (`lb_common::floor_lb::PROGRAM_FULL`).
#[xdp]
#[inline(always)]
pub fn xlb_floor_full(ctx: XdpContext) -> u32 {
    let (slot, action) = match floor_full(&ctx) {
        Some(a) => (0, a),
        None => (1, xdp_action::XDP_PASS),
    };
    if let Some(c) = XLB_FLB_VERD.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { *c += 1 };
    }
    action
}

/// `floor_entry` plus every per-packet duty an established flow has by the
/// resolved issues, each in its cheapest form and none of the balancer's
/// generality (modes other than IP-in-IP, ICMP, fragments, carriers):
/// the balancer's own full parse (one VLAN tag, IPv4/IPv6 validation,
/// fragments, extension headers: issue 9), the VIP-address filter, the bare-SYN test, the
/// entry's checks (backend live and healthy, UDP expiry: first wave, issue
/// 9) and its policy generation (issue 12), the clock, ONE counter write
/// (the backend's packets and bytes, from which a VIP's totals can be
/// summed) besides the outcome counter every packet bumps, the outer
/// source and TTL from the config, this CPU's next hop toward the backend
/// (fresh, MTU-checked length: issue 11) kept on the ingress VLAN (issue
/// 9), Ethernet padding trimmed, the push (an IPv6 one with the flow hash
/// as its flow label), XDP_TX.
#[inline(always)]
fn floor_full(ctx: &XdpContext) -> Option<u32> {
    let l2 = parse::parse_l2(ctx).ok()?;
    let mut key_buf = MaybeUninit::<mem::Aligned<FlowKey>>::uninit();
    // SAFETY: FlowKey is byte arrays and bytes: all-zero is valid.
    let key: &mut FlowKey = unsafe { mem::zeroed(&mut key_buf) };
    let ip = parse::parse_ip(ctx, &l2, key).ok()?;
    if ip.l4 != L4Status::TcpUdp {
        return None;
    }
    let tcp_flags = parse::parse_ports(ctx, &ip, key).ok()?;
    let key: &FlowKey = key;
    let (word, mask) = vip_filter_slot(key.dst16());
    if *XLB_FLB_FILTER.get(word)? & mask == 0 {
        return None;
    }
    if decision::opens_connection(key.proto(), tcp_flags) {
        return None;
    }
    let entry = XLB_FLB_FLOWS.get_ptr_mut(key)?;
    // SAFETY: a map value, valid for the whole run.
    let entry = unsafe { &*entry };
    let id = entry.backend_id;
    let backend = XLB_FLB_BES.get(id)?;
    let index = XLB_FLB_CFG_IX.get(backend.vip_id)?;
    // SAFETY: a valid, aligned map value.
    let index = unsafe { core::ptr::read_volatile(index) };
    let slot = XLB_FLB_CFG.get(index as u32)?;
    if !slot.is_exact_vip_of(key) {
        return None;
    }
    let vip = &slot.info;
    let policy = XLB_FLB_POLICY.get(vip.vip_id)?;
    let packet = PacketFacts {
        proto: key.proto(),
        tcp_flags,
        now_ns: clock::now_ns(&XLB_FLB_CLOCK),
    };
    if !follows_flow_entry(id, backend, vip, entry, &packet)
        || !source_access_current(policy, entry)
        || vip.forwarding_byte() != FORWARDING_IPIP
    {
        return None;
    }
    if let Some(s) = XLB_FLB_BESTAT.get_ptr_mut(id) {
        // SAFETY: per-CPU slot.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += ip.ip_len as u64;
        }
    }
    let cfg = XLB_FLB_CONFIG.get(0)?;
    let hop = XLB_FLB_NHOPS.get(id)?;
    let family = backend.family();
    let len = ip.ip_len + forwarding::overhead_of(FORWARDING_IPIP, family);
    if !hop.serves(packet.now_ns, len) {
        return None;
    }
    let ingress = ctx.ingress_ifindex() as u32;
    let how = decision::egress(
        ingress,
        l2.vlan_tpid,
        l2.vlan_tci,
        hop.ifindex,
        &hop.egress_vlan,
    );
    if how != Egress::Tx || !encap::trim_to(ctx, l2.l3_off + ip.ip_len) {
        return None;
    }
    let mut src_buf = MaybeUninit::<mem::Aligned<[u8; 16]>>::uninit();
    // SAFETY: a byte array: all-zero is valid.
    let src: &mut [u8; 16] = unsafe { mem::zeroed(&mut src_buf) };
    // An IPv6 outer header carries the flow hash as its flow label (ECMP
    // entropy in the fabric).
    let flow_label = if family == FAMILY_V4 {
        bytes::copy_v4(src, cfg.src_v4_octets()?);
        0
    } else {
        bytes::copy(src, cfg.src_v6_octets()?);
        decision::vip_hash(cfg.hash_seed(), vip.flags, key) & 0x000f_ffff
    };
    let outer = Outer {
        family,
        src,
        dst: backend.addr16(),
        tos: ip.tos,
        ttl: cfg.outer_ttl(),
        flow_label,
        inner_family: ip.family,
        inner_len: ip.ip_len,
        udp_len: 0,
        udp_dport: [0; 2],
        udp_sport: 0,
    };
    if !encap::push_outer(ctx, &l2, &outer, &hop.macs()) {
        return None;
    }
    Some(xdp_action::XDP_TX)
}

/// Parses an Ethernet/IPv4/TCP frame into `key` (zeroed); returns the
/// packet's TOS byte and IP length.
#[inline(always)]
fn parse_flow<K: ConnKey>(ctx: &XdpContext, key: &mut K) -> Option<(u8, usize)> {
    // SAFETY: Ipv4Hdr is byte arrays after the 14-byte Ethernet header;
    // shared references only, dead before the packet moves.
    let ip = unsafe { ref_at::<Ipv4Hdr>(ctx, EthHdr::LEN) }.ok()?;
    if ip.proto != PROTO_TCP {
        return None;
    }
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    // SAFETY: as above, for TcpHdr.
    let tcp = unsafe { ref_at::<TcpHdr>(ctx, EthHdr::LEN + ihl) }.ok()?;
    // SAFETY: EthHdr is plain data at offset 0 (shared, read only).
    let eth = unsafe { ref_at::<EthHdr>(ctx, 0) }.ok()?;
    if u16::from_be(eth.ether_type) != ETH_P_IPV4 {
        return None;
    }
    key.fill(ip, tcp.source, tcp.dest);
    Some((ip.tos, u16::from_be_bytes(ip.tot_len) as usize))
}

/// Pushes the IP-in-IP header of `family` toward `backend` with the hop's
/// MACs and outer source (slot 0, or `HOP_SLOT_V6` for IPv6); XDP_TX.
#[inline(always)]
fn push_toward(
    ctx: &XdpContext,
    backend: &Backend,
    family: u8,
    tos: u8,
    inner_len: usize,
) -> Option<u32> {
    let (slot, ether_type) = if family == FAMILY_V6 {
        (HOP_SLOT_V6, ETH_P_IPV6)
    } else {
        (0, ETH_P_IPV4)
    };
    let hop = XLB_FLB_HOP.get(slot)?;
    let outer = Outer {
        family,
        src: hop.outer_src16(),
        dst: backend.addr16(),
        tos,
        ttl: DEFAULT_OUTER_TTL,
        flow_label: 0,
        inner_family: family,
        inner_len,
        udp_len: 0,
        udp_dport: [0; 2],
        udp_sport: 0,
    };
    let l2 = L2 {
        l3_off: EthHdr::LEN,
        ether_type,
        vlan_tpid: 0,
        vlan_tci: [0; 2],
    };
    if !encap::push_outer(ctx, &l2, &outer, &(hop.smac(), hop.dmac())) {
        return None;
    }
    Some(xdp_action::XDP_TX)
}

#[xdp]
pub fn xlb_count_drop(_ctx: XdpContext) -> u32 {
    if let Some(c) = XLB_SINK_COUNT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot.
        unsafe { *c += 1 };
    }
    xdp_action::XDP_DROP
}

lb_ebpf::xdp_object!();
