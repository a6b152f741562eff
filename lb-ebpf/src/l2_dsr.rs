//! Layer-2 direct server return (`forwarding = "l2-dsr"`): the client's
//! frame goes to the backend as it is, only its MAC addresses rewritten (the
//! backend's as destination, the egress interface's as source) — no outer
//! header, no MTU overhead, the VLAN tag kept. The backend must be on the
//! balancer's segment (the FIB's next hop toward it is the backend itself)
//! and hold the VIP on its loopback with ARP/ND for it silenced; it answers
//! the client directly. The balancer checks on-link-ness on every FIB answer
//! (`NextHop::off_link`); the daemon checks it on every config change.

use aya_ebpf::programs::XdpContext;
use lb_common::MacPair;
use network_types::eth::EthHdr;

use crate::{encap::FrameMacs, packet::mut_at};

/// Writes the frame's new MAC addresses (the EtherType and any VLAN tag stay
/// as they are). Returns false if the frame has no Ethernet header.
#[inline(always)]
pub fn set_macs(ctx: &XdpContext, macs: &MacPair) -> bool {
    // SAFETY: EthHdr is plain data at offset 0 (aligned); the only reference
    // into the packet while it lives.
    let Ok(eth) = (unsafe { mut_at::<EthHdr>(ctx, 0) }) else {
        return false;
    };
    macs.write_into(eth);
    true
}
