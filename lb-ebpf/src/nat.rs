//! Full NAT (`forwarding = "nat"`): the client's packet goes to the backend's
//! own address (the VIP's port kept), from one of the balancer's NAT
//! addresses and a NAT port allocated per session; the backend's replies,
//! sent to that NAT address and port, are translated back (from the VIP to
//! the client) and sent toward the client. Backends need no change at all.
//! No byte is added: the MTU is the client's.
//!
//! Two LRU maps hold the sessions, shared by all CPUs (a reply may arrive
//! on another CPU than its request): the forward map by the client's flow,
//! the reverse map by the backend's reply flow (backend -> NAT address and
//! port). The reverse entry is the session's one record of state and age;
//! inserting it with BPF_NOEXIST is what hands a port out, so a port in use
//! toward a backend is never handed out twice. The rules (states, timeouts,
//! candidate ports, expiry) are `lb_common::nat`, shared with `xlb explain`.
//! The FIB lookups and the transmit are the balancer's, as for every mode.

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST},
    maps::{LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use lb_common::{
    bytes, checksum,
    nat::{self, PORT_TRIES},
    Backend, FlowKey, NatConfig, NatEntry, NatSession, NatStats, Verdict, FAMILY_V4, PROTO_UDP,
};
use network_types::{
    ip::{Ipv4Hdr, Ipv6Hdr},
    udp::UdpHdr,
};

use crate::{mem, packet::mut_at, parse::Ip};

/// The session maps and counters (declared in the balancer).
pub struct Maps {
    pub forward: &'static LruHashMap<FlowKey, NatSession>,
    pub reverse: &'static LruHashMap<FlowKey, NatEntry>,
    pub stats: &'static PerCpuArray<NatStats>,
}

/// What a translated packet's addresses (16-byte form) and ports (as on
/// the wire) become.
pub struct Tuple<'a> {
    pub src: &'a [u8; 16],
    pub sport: [u8; 2],
    pub dst: &'a [u8; 16],
    pub dport: [u8; 2],
}

/// Set in what [`session`] returns when it made no session; the verdict
/// (`no_outer_source`: no NAT address of the family; `nat_exhausted`) is
/// in the low byte. A `Result` here compiles to a value the verifier
/// refuses (an undefined payload register masked on the error path).
pub const SESSION_FAILED: u32 = 1 << 31;

/// What [`session`] returns when asked for an existing session only
/// (`hash` `None`) and the flow has none.
pub const SESSION_MISS: u32 = 1 << 30;

/// The NAT port (host order, in the low 16 bits) of `flow`'s session toward
/// backend `backend_id`, its NAT address written to `nat_addr`; or
/// [`SESSION_FAILED`] with a verdict. An existing session is refreshed
/// (`nat::refreshes`); a flow without one (or whose port another session
/// reclaimed, or that moved to another backend) gets one: up to
/// `PORT_TRIES` candidate ports from `hash`, the flow's own 5-tuple hash
/// ([`flow_hash`]; never the VIP's hash, which with `source-ip` hashing is
/// the same for all of a client's connections), each tried with a
/// BPF_NOEXIST insert of the reverse entry; a taken port whose session has
/// expired is reclaimed. Without `hash`, only an existing session is
/// looked for ([`SESSION_MISS`] if there is none).
#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "the fast path hands on what it already looked up"
)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "by value, the 40-byte key and the entries would be copied on the BPF stack"
)]
pub fn session(
    m: &Maps,
    cfg: &NatConfig,
    hash: Option<u32>,
    flow: &FlowKey,
    backend_id: u32,
    backend: &Backend,
    tcp_flags: u8,
    now_ns: u64,
    nat_addr: &mut [u8; 16],
) -> u32 {
    let mut buf = MaybeUninit::<mem::Aligned<FlowKey>>::uninit();
    // SAFETY: FlowKey is integers and byte arrays: all-zero is valid.
    let reply: &mut FlowKey = unsafe { mem::zeroed(&mut buf) };
    let (proto, family) = (flow.proto(), flow.family());
    if let Some(s) = m.forward.get_ptr(flow) {
        // SAFETY: a map value, valid for the whole run; replaced whole.
        let s = unsafe { &*s };
        if s.backend_id == backend_id {
            reply.set_nat_reply(
                backend.addr16(),
                flow.dport_be(),
                s.nat_addr16(),
                s.nat_port_be(),
                proto,
                family,
            );
            if let Some(e) = m.reverse.get_ptr_mut(&*reply) {
                // SAFETY: a map value, valid for the whole run. Other CPUs
                // write `state` and `last_seen_ns` in place (a byte and an
                // aligned 8-byte store, never torn); a reclaim replaces the
                // whole element.
                let e = unsafe { &mut *e };
                if e.belongs_to(flow) {
                    let state = nat::next_state(proto, Some(e.state), tcp_flags);
                    if nat::refreshes(e, state, now_ns) {
                        e.state = state;
                        e.last_seen_ns = now_ns;
                    }
                    bytes::copy(nat_addr, s.nat_addr16());
                    return u32::from(s.nat_port());
                }
            }
        }
    }

    // The hash costs every packet; only a new session needs it.
    let Some(hash) = hash else {
        return SESSION_MISS;
    };
    let Some(source) = cfg.source_for(family, hash) else {
        return SESSION_FAILED | Verdict::NoOuterSource as u32;
    };
    let mut entry_buf = MaybeUninit::<mem::Aligned<NatEntry>>::uninit();
    // SAFETY: NatEntry is integers and byte arrays: all-zero is valid.
    let entry: &mut NatEntry = unsafe { mem::zeroed(&mut entry_buf) };
    entry.fill(flow, nat::next_state(proto, None, tcp_flags), now_ns);
    let entry: &NatEntry = entry;
    let (min, max) = cfg.port_range();
    // Only the NAT port changes between tries.
    reply.set_nat_reply(
        backend.addr16(),
        flow.dport_be(),
        source,
        [0; 2],
        proto,
        family,
    );
    let mut attempt = 0;
    while attempt < PORT_TRIES {
        let port = nat::port_candidate(hash, attempt, min, max).to_be_bytes();
        attempt += 1;
        reply.set_ports(flow.dport_be(), port);
        if m.reverse
            .insert(&*reply, entry, BPF_NOEXIST as u64)
            .is_err()
        {
            // Taken (or no memory): reclaim it only from an expired session.
            let Some(old) = m.reverse.get_ptr(&*reply) else {
                continue;
            };
            // SAFETY: a map value, read only.
            if !nat::is_expired(cfg, unsafe { &*old }, now_ns)
                || m.reverse.insert(&*reply, entry, BPF_ANY as u64).is_err()
            {
                continue;
            }
            count(m, |s| s.reclaimed += 1);
        }
        let mut session_buf = MaybeUninit::<mem::Aligned<NatSession>>::uninit();
        // SAFETY: NatSession is integers and byte arrays: all-zero is valid.
        let session: &mut NatSession = unsafe { mem::zeroed(&mut session_buf) };
        session.fill(source, port, backend_id);
        // A failed insert costs the next packet a new port, nothing more.
        let _ = m.forward.insert(flow, &*session, BPF_ANY as u64);
        count(m, |s| s.sessions += 1);
        bytes::copy(nat_addr, source);
        return u32::from(u16::from_be_bytes(port));
    }
    SESSION_FAILED | Verdict::NatExhausted as u32
}

/// `lb_common::flow_hash` of a flow, for [`session`]'s candidate ports and
/// NAT address, in a BPF subprogram: inlined into the session's, the key's
/// 40 bytes, loaded once for the hash and again for the new entry, would
/// stay live across both (spilled byte by byte); called from the session's
/// own subprogram, its frame would add to the session's.
#[inline(never)]
pub fn flow_hash(seed: u32, flow: &FlowKey) -> u32 {
    lb_common::flow_hash(seed, flow)
}

/// The session a packet parsed into `key` is a reply of (backend -> NAT
/// address and port), its state and age updated by the packet's `tcp_flags`.
#[inline(always)]
pub fn reply_entry(
    m: &Maps,
    key: &FlowKey,
    tcp_flags: u8,
    now_ns: u64,
) -> Option<&'static NatEntry> {
    let e = m.reverse.get_ptr_mut(key)?;
    // SAFETY: as in `session`.
    let e = unsafe { &mut *e };
    let state = nat::next_state(key.proto(), Some(e.state), tcp_flags);
    if nat::refreshes(e, state, now_ns) {
        e.state = state;
        e.last_seen_ns = now_ns;
    }
    count(m, |s| s.replies += 1);
    Some(e)
}

#[inline(always)]
fn count(m: &Maps, f: impl FnOnce(&mut NatStats)) {
    if let Some(s) = m.stats.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        f(unsafe { &mut *s });
    }
}

/// The TCP header up to its checksum.
#[repr(C)]
struct TcpToCheck {
    ports: [[u8; 2]; 2],
    _seq_ack_off_flags_window: [u8; 12],
    check: [u8; 2],
}

/// Rewrites the IP packet at `ip` (TCP or UDP) to `to`, updating the IPv4
/// header checksum and the TCP/UDP checksum (pseudo-header addresses and
/// ports) incrementally; a UDP checksum of 0 over IPv4 ("none") stays 0.
/// The TTL is left alone, as the other modes leave it. False if a header is
/// not in the frame.
///
/// A BPF subprogram (both directions call it): inlined, its address
/// arithmetic would not fit in `xlb_nat`'s stack frame. It gets the
/// offsets as scalars rather than the caller's `Ip`.
#[inline(always)]
pub fn rewrite(ctx: &XdpContext, ip: &Ip, to: &Tuple) -> bool {
    let family_proto = (u32::from(ip.family) << 8) | u32::from(ip.proto);
    rewrite_call(ctx, ip.l3_off, ip.l4_off, family_proto, to) != 0
}

#[inline(never)]
fn rewrite_call(
    ctx: &XdpContext,
    l3_off: usize,
    l4_off: usize,
    family_proto: u32,
    to: &Tuple,
) -> u32 {
    // Bounded again for the verifier, which checks packet offsets inside
    // this function from its own arguments (Ethernet and one VLAN tag are
    // 18 bytes; an XDP frame is one page).
    if l3_off > 0x1f || l4_off > 0xfff {
        return 0;
    }
    let v4 = (family_proto >> 8) as u8 == FAMILY_V4;
    let proto = family_proto as u8;
    // Old and new words are summed while each is replaced, word by word:
    // summing first and copying after would keep every byte live at once
    // (hundreds of bytes of spills).
    let mut sums = (0u32, 0u32);
    if v4 {
        // SAFETY: Ipv4Hdr is byte arrays (alignment 1); the only reference
        // into the packet while it lives.
        let Ok(h) = (unsafe { mut_at::<Ipv4Hdr>(ctx, l3_off) }) else {
            return 0;
        };
        swap_words(&mut h.src_addr, to.src, &mut sums);
        swap_words(&mut h.dst_addr, to.dst, &mut sums);
        h.check = checksum::replace(u16::from_be_bytes(h.check), sums.0, sums.1).to_be_bytes();
    } else {
        // SAFETY: as above, for Ipv6Hdr.
        let Ok(h) = (unsafe { mut_at::<Ipv6Hdr>(ctx, l3_off) }) else {
            return 0;
        };
        swap_words(&mut h.src_addr, to.src, &mut sums);
        swap_words(&mut h.dst_addr, to.dst, &mut sums);
    }
    let (old, new) = sums;
    let new = new + word(to.sport) + word(to.dport);
    if proto == PROTO_UDP {
        // SAFETY: UdpHdr is byte arrays (alignment 1); the IP header
        // reference above is dead.
        let Ok(u) = (unsafe { mut_at::<UdpHdr>(ctx, l4_off) }) else {
            return 0;
        };
        let old = old + word(u.src) + word(u.dst);
        u.check = checksum::replace_udp(u16::from_be_bytes(u.check), old, new, v4).to_be_bytes();
        u.src = to.sport;
        u.dst = to.dport;
    } else {
        // SAFETY: as above, for the TCP header up to its checksum.
        let Ok(t) = (unsafe { mut_at::<TcpToCheck>(ctx, l4_off) }) else {
            return 0;
        };
        let old = old + word(t.ports[0]) + word(t.ports[1]);
        t.check = checksum::replace(u16::from_be_bytes(t.check), old, new).to_be_bytes();
        t.ports[0] = to.sport;
        t.ports[1] = to.dport;
    }
    1
}

/// Writes the first `N` bytes of `new` over `field`, adding the old and new
/// 16-bit words to `sums`.
#[inline(always)]
fn swap_words<const N: usize>(field: &mut [u8; N], new: &[u8; 16], sums: &mut (u32, u32)) {
    let f = field.as_mut_ptr();
    let mut i = 0;
    while i + 1 < N {
        let (a, b) = (new[i], new[i + 1]);
        sums.0 += word([field[i], field[i + 1]]);
        sums.1 += word([a, b]);
        // SAFETY: `i + 1 < N` stays inside `field`. Volatile: stores at
        // fixed indexes, never merged into a `memcpy` call.
        unsafe {
            core::ptr::write_volatile(f.add(i), a);
            core::ptr::write_volatile(f.add(i + 1), b);
        }
        i += 2;
    }
}

#[inline(always)]
fn word(b: [u8; 2]) -> u32 {
    u32::from(u16::from_be_bytes(b))
}
