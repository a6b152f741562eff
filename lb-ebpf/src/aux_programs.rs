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
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, DevMap, PerCpuArray},
    programs::XdpContext,
};
use lb_common::{
    gen_frame::{GenFrame, GEN_LEN, IP_CSUM_OFF, SPORT_OFF, SRC_LOW_OFF},
    PROTO_TCP,
};
use lb_ebpf::{
    packet::{mut_at, ref_at},
    parse::ETH_P_IPV4,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, tcp::TcpHdr};

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

#[xdp]
pub fn xlb_count_drop(_ctx: XdpContext) -> u32 {
    if let Some(c) = XLB_SINK_COUNT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot.
        unsafe { *c += 1 };
    }
    xdp_action::XDP_DROP
}

lb_ebpf::xdp_object!();
