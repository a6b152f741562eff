//! Full NAT's program, `xlb_nat`, and its side of `xlb_balancer`: a module
//! of the balancer's object (it shares the balancer's maps and its FIB,
//! exit and transmit code) kept out of the fast path's file, which only
//! dispatches here (`hand_to_nat` for a `nat` VIP's packet, its backend
//! chosen as for every mode; `maybe_nat_reply` for TCP/UDP to no VIP).
//! The packet work and the session rules are `lb_ebpf::nat` and
//! `lb_common::nat`.
//!
//! NAT runs in a program of its own, reached by a tail call: verified on
//! its own, once, rather than once for each of the many paths of
//! `xlb_balancer` that reach a mode (static subprograms are verified in
//! every caller's context, which took `xlb_balancer` past the verifier's
//! million instructions), and with its own 512-byte stack.

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::BPF_F_NO_COMMON_LRU,
    macros::{map, xdp},
    maps::{LruHashMap, PerCpuArray, ProgramArray},
    programs::XdpContext,
};
use lb_common::{
    bytes, FlowKey, NatEntry, NatSession, NatStats, Verdict, DEFAULT_NAT_TABLE_SIZE, NO_BACKEND,
};
use lb_ebpf::{
    clock,
    encap::{self, fib_rc, Route},
    l2_dsr, mem, nat,
    parse::{self, Ip, L4Status, L2},
};

use super::{
    exit_of, fib_hop, next_hop, parse_verdict, too_big, transmit, TooBigTo, XLB_BACKENDS,
    XLB_CLOCK, XLB_CONFIG, XLB_VERDICTS,
};

/// Full NAT's sessions by the client's flow (client -> VIP): the NAT
/// address and port toward the backend. Shared by all CPUs with per-CPU LRU
/// lists, like `XLB_FLOWS`.
#[map]
static XLB_NAT_FWD: LruHashMap<FlowKey, NatSession> =
    LruHashMap::with_max_entries(DEFAULT_NAT_TABLE_SIZE, BPF_F_NO_COMMON_LRU);

/// Full NAT's sessions by the backend's reply flow (backend -> NAT address
/// and port): the client's flow, the session's state and age. A reply may
/// arrive on any CPU, so shared like `XLB_NAT_FWD`.
#[map]
static XLB_NAT_REV: LruHashMap<FlowKey, NatEntry> =
    LruHashMap::with_max_entries(DEFAULT_NAT_TABLE_SIZE, BPF_F_NO_COMMON_LRU);

/// Full NAT's counters (one entry).
#[map]
static XLB_NAT_STATS: PerCpuArray<NatStats> = PerCpuArray::with_max_entries(1, 0);

/// `xlb_nat` at index 0 (installed by the daemon), for the tail call.
#[map]
static XLB_NAT_PROG: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// What `xlb_balancer` tells `xlb_nat` (this CPU's, written just before
/// the tail call): the backend id of a `nat` VIP's packet, or `NO_BACKEND`
/// for a packet to no VIP (a reply, perhaps).
#[map]
static XLB_NAT_HANDOFF: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The NAT maps for `lb_ebpf::nat`, built where they are used (a static of
/// map references would put map addresses in a data section, which the
/// loader cannot relocate).
#[inline(always)]
fn nat_maps() -> nat::Maps {
    nat::Maps {
        forward: &XLB_NAT_FWD,
        reverse: &XLB_NAT_REV,
        stats: &XLB_NAT_STATS,
    }
}

/// Hands the packet to `xlb_nat` (a tail call, which does not return when
/// it succeeds) with `backend_id` (`NO_BACKEND`: a packet to no VIP). The
/// verdict if it could not.
#[inline(always)]
fn tail_call_nat(ctx: &XdpContext, backend_id: u32) -> Verdict {
    let Some(slot) = XLB_NAT_HANDOFF.get_ptr_mut(0) else {
        return Verdict::Internal;
    };
    // SAFETY: per-CPU slot, read by the program this CPU runs next.
    unsafe { *slot = backend_id };
    // SAFETY: `ctx` is this program's context; on success the call does
    // not return and nothing of this program runs again.
    unsafe { XLB_NAT_PROG.tail_call(ctx, 0) };
    // Only reached when index 0 is empty: the daemon had not installed it.
    Verdict::Internal
}

/// A `nat` VIP's packet toward `backend_id`: `xlb_nat` translates it.
#[inline(always)]
pub(super) fn hand_to_nat(ctx: &XdpContext, backend_id: u32) -> Verdict {
    tail_call_nat(ctx, backend_id)
}

/// A TCP/UDP packet to no VIP: not ours unless it is sent to one of the
/// NAT addresses, in which case it may be a NAT session's reply, for
/// `xlb_nat` to find out. Other traffic pays a comparison with the NAT
/// addresses (none without `[nat]`), no tail call.
#[inline(always)]
pub(super) fn maybe_nat_reply(ctx: &XdpContext, key: &FlowKey) -> Verdict {
    match XLB_CONFIG.get(0) {
        Some(cfg) if cfg.nat().is_source(key.family(), key.dst16()) => {
            tail_call_nat(ctx, NO_BACKEND)
        }
        _ => Verdict::NotVip,
    }
}

/// Full NAT, both directions (`lb_ebpf::nat`), reached from `xlb_balancer`
/// by a tail call. It parses the packet again (the tail call carries only
/// the backend id) and counts its own verdict. Its stack holds only the
/// parsed packet: the session (`nat_session`) and the way out (`nat_send`)
/// are BPF subprograms called one after the other, so each has the rest
/// of the 512 bytes.
#[xdp]
// Inlined into aya's entry wrapper, as `xlb_balancer` is (see there).
#[inline(always)]
pub fn xlb_nat(ctx: XdpContext) -> u32 {
    match nat_path(&ctx) {
        // Counted by `nat_send`.
        Ok(action) => action,
        Err(v) => count_verdict(v, v.xdp_action()),
    }
}

/// Bumps `verdict`'s counter; returns `action`.
#[inline(always)]
fn count_verdict(verdict: Verdict, action: u32) -> u32 {
    if let Some(slot) = XLB_VERDICTS.get_ptr_mut(verdict as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { *slot += 1 };
    }
    action
}

#[inline(always)]
fn nat_path(ctx: &XdpContext) -> Result<u32, Verdict> {
    let handoff = XLB_NAT_HANDOFF.get(0).ok_or(Verdict::Internal)?;
    let backend_id = *handoff;
    let l2 = parse::parse_l2(ctx).map_err(parse_verdict)?;
    let mut key_buf = MaybeUninit::<mem::Aligned<FlowKey>>::uninit();
    // SAFETY: FlowKey is integers and byte arrays: all-zero is valid.
    let key: &mut FlowKey = unsafe { mem::zeroed(&mut key_buf) };
    let ip = parse::parse_ip(ctx, &l2, key).map_err(parse_verdict)?;
    if ip.l4 != L4Status::TcpUdp {
        // An ICMP error or a fragment to a `nat` VIP: no session to
        // translate it by (`xlb_balancer` sends only TCP/UDP replies).
        return Err(Verdict::NatUntranslatable);
    }
    let tcp_flags = parse::parse_ports(ctx, &ip, key).map_err(parse_verdict)?;
    let key: &FlowKey = key;
    let mut send_buf = MaybeUninit::<mem::Aligned<NatSend>>::uninit();
    // SAFETY: NatSend is integers and byte arrays: all-zero is valid.
    let send: &mut NatSend = unsafe { mem::zeroed(&mut send_buf) };
    send.set_packet(&l2, &ip, now_ns());
    if backend_id == NO_BACKEND {
        nat_reply(key, tcp_flags, send)?;
    } else {
        nat_forward(key, tcp_flags, backend_id, send)?;
    }
    let sent = nat_send(ctx, send);
    if sent & TOO_BIG != 0 {
        return Ok(nat_too_big(ctx, send, key.src16(), sent & !TOO_BIG));
    }
    Ok(sent)
}

/// `nat_send`'s return for a packet too big for its egress (the egress MTU
/// in the other bits): not an XDP action, whose values are small.
const TOO_BIG: u32 = 1 << 31;

/// Answers a packet too big for its egress as the other modes do, from the
/// packet as it came (nothing is rewritten yet): a client's packet with an
/// ICMP error from the VIP, a backend's reply with one from the NAT address;
/// NAT adds no byte. A BPF subprogram of its own, called after `nat_send`
/// returned rather than from it: the ICMP rewrite's stack on top of
/// `nat_send`'s would pass the verifier's 512 bytes. `sender` is the
/// packet's source as parsed (the caller's key: nothing is copied for the
/// packets that fit). Counts its verdict.
#[inline(never)]
fn nat_too_big(ctx: &XdpContext, a: &NatSend, sender: &[u8; 16], egress_mtu: u32) -> u32 {
    let Some((l2, ip)) = a.packet() else {
        return count_verdict(Verdict::Internal, Verdict::Internal.xdp_action());
    };
    let to = TooBigTo {
        family: a.family,
        sender,
        now_ns: a.now_ns,
    };
    match too_big(ctx, &l2, &ip, &to, egress_mtu, 0) {
        Ok((v, action)) => count_verdict(v, action),
        Err(v) => count_verdict(v, v.xdp_action()),
    }
}

/// The clock (`lb_ebpf::clock`) in a function of its own: inlined, the
/// cache's two helper calls keep more of `xlb_nat`'s values on its stack,
/// which together with `nat_session`'s frame passes the verifier's 512
/// bytes of stack per call chain.
#[inline(never)]
fn now_ns() -> u64 {
    clock::now_ns(&XLB_CLOCK)
}

/// A `nat` VIP's packet (the client's flow `key`) toward `backend_id`: its
/// session's NAT address and port (`nat_session`), then out from there to
/// the backend (`nat_send`).
#[inline(always)]
fn nat_forward(
    key: &FlowKey,
    tcp_flags: u8,
    backend_id: u32,
    send: &mut NatSend,
) -> Result<(), Verdict> {
    let backend = XLB_BACKENDS.get(backend_id).ok_or(Verdict::Internal)?;
    if backend.family() != key.family() {
        // The config keeps nat backends in their VIP's family.
        return Err(Verdict::Internal);
    }
    // An established session first; for a new one, the flow's hash (its
    // subprogram's frame must not stack on the session's: `nat::flow_hash`)
    // and the session call again, allowed to allocate.
    let mut r = nat_session(
        key,
        backend_id,
        u64::from(tcp_flags),
        send.now_ns,
        &mut send.src,
    );
    if r == nat::SESSION_MISS {
        let cfg = XLB_CONFIG.get(0).ok_or(Verdict::Internal)?;
        let hash = nat::flow_hash(cfg.hash_seed(), key);
        let flags_hash = WITH_HASH | (u64::from(hash) << 8) | u64::from(tcp_flags);
        r = nat_session(key, backend_id, flags_hash, send.now_ns, &mut send.src);
    }
    if r & (nat::SESSION_FAILED | nat::SESSION_MISS) != 0 {
        return Err(if r & nat::SESSION_MISS != 0 {
            Verdict::Internal
        } else if r & 0xff == Verdict::NatExhausted as u32 {
            Verdict::NatExhausted
        } else if r & 0xff == Verdict::NoOuterSource as u32 {
            Verdict::NoOuterSource
        } else {
            Verdict::Internal
        });
    }
    send.sport = (r as u16).to_be_bytes();
    bytes::copy(&mut send.dst, backend.addr16());
    send.dport = key.dport_be();
    send.fib_from_src = 1;
    send.cache_id = backend_id;
    Ok(())
}

/// `nat::session` in a BPF subprogram: inlined, its keys and entries would
/// not fit in `xlb_nat`'s stack frame. It looks the config and the backend
/// up itself (two array lookups) rather than receive map-value pointers;
/// the flow's TCP flags come in the low byte of `flags_hash`, with
/// [`WITH_HASH`] its hash in bits 8-39 (a subprogram takes five
/// arguments); without, only an existing session is looked for.
#[inline(never)]
fn nat_session(
    flow: &FlowKey,
    backend_id: u32,
    flags_hash: u64,
    now_ns: u64,
    nat_addr: &mut [u8; 16],
) -> u32 {
    let (Some(cfg), Some(backend)) = (XLB_CONFIG.get(0), XLB_BACKENDS.get(backend_id)) else {
        return nat::SESSION_FAILED | Verdict::Internal as u32;
    };
    nat::session(
        &nat_maps(),
        cfg.nat(),
        (flags_hash & WITH_HASH != 0).then_some((flags_hash >> 8) as u32),
        flow,
        backend_id,
        backend,
        flags_hash as u8,
        now_ns,
        nat_addr,
    )
}

/// `nat_session`'s `flags_hash` carries a hash: a new session may be made.
const WITH_HASH: u64 = 1 << 63;

/// A TCP/UDP packet to no VIP while NAT is on: if it is the reply of a NAT
/// session (backend -> NAT address and port, `XLB_NAT_REV`), it is
/// translated back (from the VIP's address and port to the client's) and
/// sent toward the client (`nat_send`). Sent to a NAT address but no
/// session's: passed to the kernel as `nat_reply_unknown`.
#[inline(always)]
fn nat_reply(key: &FlowKey, tcp_flags: u8, send: &mut NatSend) -> Result<(), Verdict> {
    // `xlb_balancer` sends only packets to a NAT address.
    let Some(entry) = nat::reply_entry(&nat_maps(), key, tcp_flags, send.now_ns) else {
        return Err(Verdict::NatReplyUnknown);
    };
    bytes::copy(&mut send.src, entry.vip16());
    send.sport = entry.vip_port_be();
    bytes::copy(&mut send.dst, entry.client16());
    send.dport = entry.client_port_be();
    Ok(())
}

/// A translated packet's way out, for `nat_send`: the new addresses and
/// ports, and what it keeps of the parsed packet.
#[repr(C)]
struct NatSend {
    src: [u8; 16],
    dst: [u8; 16],
    sport: [u8; 2],
    dport: [u8; 2],
    family: u8,
    proto: u8,
    tos: u8,
    /// 1: the FIB is asked from `src` (toward a backend, from the NAT
    /// address); 0: from the unspecified address (toward a client, from a
    /// VIP the host need not hold, as for `l2-dsr`).
    fib_from_src: u8,
    /// The backend id whose `XLB_NEXTHOPS` slot caches the FIB's answer;
    /// `NO_BACKEND` (replies): asked every time.
    cache_id: u32,
    vlan_tpid: u16,
    vlan_tci: [u8; 2],
    // u16: the offsets are within a page and an IP packet's length fits;
    // a smaller NatSend (in `xlb_nat`'s frame) leaves room under the
    // verifier's 512-byte stack for `nat_too_big`'s.
    l3_off: u16,
    l4_off: u16,
    ip_len: u16,
    now_ns: u64,
}

impl NatSend {
    #[inline(always)]
    fn set_packet(&mut self, l2: &L2, ip: &Ip, now_ns: u64) {
        self.family = ip.family;
        self.proto = ip.proto;
        self.tos = ip.tos;
        self.vlan_tpid = l2.vlan_tpid;
        self.vlan_tci = l2.vlan_tci;
        self.l3_off = l2.l3_off as u16;
        self.l4_off = ip.l4_off as u16;
        self.ip_len = ip.ip_len as u16;
        self.now_ns = now_ns;
    }

    /// The packet's link-layer and IP facts back from what `set_packet`
    /// kept, bounded again for the verifier (a subprogram is checked from
    /// its own arguments): Ethernet and one VLAN tag are 18 bytes, an XDP
    /// frame is one page. `None`: out of bounds (never, from `set_packet`).
    #[inline(always)]
    fn packet(&self) -> Option<(L2, Ip)> {
        let (l3_off, l4_off, ip_len) = (
            self.l3_off as usize,
            self.l4_off as usize,
            self.ip_len as usize,
        );
        if l3_off > 0x1f || l4_off > 0xfff || ip_len > 0xffff {
            return None;
        }
        let l2 = L2 {
            l3_off,
            ether_type: 0,
            vlan_tpid: self.vlan_tpid,
            vlan_tci: self.vlan_tci,
        };
        let ip = Ip {
            family: self.family,
            l3_off,
            l4_off,
            proto: self.proto,
            l4: L4Status::TcpUdp,
            ip_len,
            tos: self.tos,
        };
        Some((l2, ip))
    }
}

/// Sends a NAT-translated packet: the FIB toward `a.dst`, the rewrite
/// (`nat::rewrite`), the MACs and the transmit, as for every mode; counts
/// its verdict and returns the XDP action. A BPF subprogram (see
/// `xlb_nat`). NAT adds no byte, so only an egress with a smaller MTU than
/// the packet's ingress makes it too big: its sender gets the ICMP answer
/// the other modes send (`too_big`).
#[inline(never)]
fn nat_send(ctx: &XdpContext, a: &NatSend) -> u32 {
    match nat_send_result(ctx, a) {
        // Not counted: `nat_too_big` answers it and counts what it did.
        Ok((Verdict::TooBig, too_big)) => too_big,
        Ok((v, action)) => count_verdict(v, action),
        Err(v) => count_verdict(v, v.xdp_action()),
    }
}

#[inline(always)]
fn nat_send_result(ctx: &XdpContext, a: &NatSend) -> Result<(Verdict, u32), Verdict> {
    let (l2, ip) = a.packet().ok_or(Verdict::Internal)?;
    let (l3_off, ip_len) = (ip.l3_off, ip.ip_len);
    let mut zero_buf = MaybeUninit::<mem::Aligned<[u8; 16]>>::uninit();
    // SAFETY: a byte array: all-zero is valid.
    let unspecified: &[u8; 16] = unsafe { mem::zeroed(&mut zero_buf) };
    let route = Route {
        family: a.family,
        src: if a.fib_from_src != 0 {
            &a.src
        } else {
            unspecified
        },
        dst: &a.dst,
        tos: a.tos,
        len: ip_len,
    };
    let ingress = ctx.ingress_ifindex() as u32;
    let (rc, hop) = if a.cache_id != NO_BACKEND {
        next_hop(ctx, &route, a.cache_id, ingress, a.now_ns)
    } else {
        fib_hop(ctx, &route, ingress)
    };
    if rc == fib_rc::FRAG_NEEDED {
        return Ok((Verdict::TooBig, TOO_BIG | hop.mtu));
    }
    let exit = exit_of(ctx, &l2, rc, &hop, ingress)?;
    if !encap::trim_to(ctx, l3_off + ip_len) {
        return Err(Verdict::Internal);
    }
    let to = nat::Tuple {
        src: &a.src,
        sport: a.sport,
        dst: &a.dst,
        dport: a.dport,
    };
    if !nat::rewrite(ctx, &ip, &to) || !l2_dsr::set_macs(ctx, &exit.macs) {
        return Err(Verdict::Internal);
    }
    transmit(ctx, &exit, l3_off, a.family)
}
