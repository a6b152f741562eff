//! Small XDP programs that are not the balancer:
//! - `xlb_pass`: XDP_PASS at once. Attached in native mode to the peer of a veth
//!   whose other end XDP_TXes (a veth only delivers XDP_TX frames to a peer that
//!   runs a native XDP program), and the benchmarks' "do nothing" floor.
//! - `xlb_floor_tx`: parses Ethernet/IPv4/TCP, swaps MACs, XDP_TX: the cheapest
//!   possible forwarder, the benchmarks' floor for the balancer.
//! - `xlb_count_drop`: counts and drops; the benchmark sink.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use lb_common::PROTO_TCP;
use lb_ebpf::{packet::ptr_at, parse::ETH_P_IPV4};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, tcp::TcpHdr};

/// Slot 0: packets seen by `xlb_count_drop`.
#[map]
static XLB_SINK_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

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
    // SAFETY: every pointer comes from ptr_at (bounds checked), plain data.
    let eth = unsafe { ptr_at::<EthHdr>(ctx, 0)? };
    if u16::from_be(unsafe { (*eth).ether_type }) != ETH_P_IPV4 {
        return None;
    }
    let ip = unsafe { &*ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN)? };
    if ip.proto != PROTO_TCP {
        return None;
    }
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    let _tcp = unsafe { ptr_at::<TcpHdr>(ctx, EthHdr::LEN + ihl)? };
    unsafe {
        core::mem::swap(&mut (*eth).dst_addr, &mut (*eth).src_addr);
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

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
