//! The balancer's decisions, as pure functions that the XDP program and
//! userspace (`xlb explain`, tests) both call: which VIP a packet is for,
//! which hash picks its slot, which slot, whether a connection-table entry
//! is followed, refreshed or created; for traffic without ports (fragments,
//! ICMP), what the address marker says. Map lookups are passed in as
//! closures, so the same rule runs against the kernel's maps (in XDP) or the
//! pinned maps read from userspace.
//!
//! An ICMP error about a VIP's flow is balanced as that flow: the same VIP,
//! hash and rules (a followed entry wins, else the table), but it never
//! creates or refreshes an entry. A fragment of a source-hashed VIP is
//! balanced by the table alone (it has no ports to find an entry by).

use crate::{
    flow_hash::{flow_hash, source_hash},
    maps::{
        Backend, FlowKey, FlowValue, VipInfo, VipKey, VlanDevice, MARKER_F_PING, NO_BACKEND,
        PROTO_TCP, VIP_F_FAIL_OPEN, VIP_F_NO_FLOW_TABLE, VIP_F_SOURCE_HASH,
    },
};

/// TCP flag bits (byte 13 of the TCP header).
pub const TCP_FLAG_FIN: u8 = 0x01;
pub const TCP_FLAG_SYN: u8 = 0x02;
pub const TCP_FLAG_RST: u8 = 0x04;
pub const TCP_FLAG_ACK: u8 = 0x10;

/// What the connection-table rules need to know about one packet of a VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketFacts {
    /// `PROTO_TCP` or `PROTO_UDP`.
    pub proto: u8,
    /// The TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// Coarse monotonic time (ns) the packet is handled at.
    pub now_ns: u64,
}

/// [`PacketFacts::opens_connection`] before the packet's time is known:
/// the data plane asks it to spare a bare SYN the connection lookup.
#[inline(always)]
pub const fn opens_connection(proto: u8, tcp_flags: u8) -> bool {
    proto == PROTO_TCP && tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) == TCP_FLAG_SYN
}

impl PacketFacts {
    /// A TCP SYN without ACK: the first packet of a new connection (or a
    /// retransmit of it, or a re-used 5-tuple).
    #[inline(always)]
    pub const fn opens_connection(&self) -> bool {
        opens_connection(self.proto, self.tcp_flags)
    }

    /// A TCP segment with RST set.
    #[inline(always)]
    pub const fn is_reset(&self) -> bool {
        self.proto == PROTO_TCP && self.tcp_flags & TCP_FLAG_RST != 0
    }
}

/// Whether (and why not) a connection-table entry is followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowEntryUse {
    /// The packet goes to the entry's backend.
    Follow,
    /// The slot is free, or now serves another VIP (ids are recycled).
    BackendGone,
    /// The backend failed its health check and the VIP is not failing open.
    BackendUnhealthy,
    /// A TCP SYN without ACK: a new connection takes the VIP's current
    /// table, whatever an old entry of the same 5-tuple says.
    NewConnection,
    /// A UDP entry idle for longer than the VIP's UDP idle timeout.
    Expired,
}

/// The VIP a packet is for: the exact (address, port, protocol) first, then
/// the address's port-0 VIP. `key` must be [`VipKey::of_flow`] of the packet
/// (built in place by the data plane); it is left as the last key tried.
#[inline(always)]
pub fn lookup_vip<V>(key: &mut VipKey, mut get: impl FnMut(&VipKey) -> Option<V>) -> Option<V> {
    if let Some(v) = get(key) {
        return Some(v);
    }
    key.set_any_port();
    get(key)
}

/// Whether a packet without usable ports (a fragment) is addressed to a VIP
/// address: then it is ours to drop, else it passes. `key` must be
/// [`VipKey::of_flow`] of the packet; it is turned into the address marker.
#[inline(always)]
pub fn is_vip_address<V>(key: &mut VipKey, get: impl FnMut(&VipKey) -> Option<V>) -> bool {
    address_marker(key, get).is_some()
}

/// The marker of the packet's destination address, if it is a VIP address:
/// what the balancer does with its traffic that has no ports (fragments,
/// ICMP). `key` must be [`VipKey::of_flow`] of the packet (or any key of the
/// address); it is turned into the address marker.
#[inline(always)]
pub fn address_marker<V>(key: &mut VipKey, mut get: impl FnMut(&VipKey) -> Option<V>) -> Option<V> {
    key.set_to_marker();
    get(key)
}

/// Whether the balancer answers an echo request to the address of `marker`
/// (at least one of the address's VIPs allows ping).
#[inline(always)]
pub const fn answers_ping(marker: &VipInfo) -> bool {
    marker.flags & MARKER_F_PING != 0
}

/// The VIP that takes the fragments of protocol `proto` sent to the address
/// of `marker`: the address's only VIP of that protocol, when it hashes the
/// source address (the reconciler records its port in the marker). `key`,
/// the marker's key, becomes that VIP's key; false when no VIP takes them
/// (a later fragment carries no ports, so a VIP that hashes the 5-tuple
/// cannot place it, and neither can an address with several VIPs of the
/// protocol).
#[inline(always)]
pub fn fragment_vip(marker: &VipInfo, proto: u8, key: &mut VipKey) -> bool {
    match marker.fragment_port(proto) {
        Some(port) => {
            key.set_port_proto(port, proto);
            true
        }
        None => false,
    }
}

/// Whether a VIP that a marker names for fragments ([`fragment_vip`]) does
/// balance them: only by the source address (else the marker is stale,
/// between two writes of the reconciler, and the fragment is dropped).
#[inline(always)]
pub const fn balances_fragments(vip_flags: u32) -> bool {
    vip_flags & VIP_F_SOURCE_HASH != 0
}

/// The flow hash a VIP's packets are balanced by: the source address alone
/// (client affinity) or the 5-tuple, seeded with the deployment's
/// `hash_seed` (`GlobalConfig::hash_seed`).
#[inline(always)]
pub const fn vip_hash(seed: u32, vip_flags: u32, key: &FlowKey) -> u32 {
    if vip_flags & VIP_F_SOURCE_HASH != 0 {
        source_hash(seed, key)
    } else {
        flow_hash(seed, key)
    }
}

/// The `XLB_MAGLEV` slot (index over all VIPs' tables) that `hash` picks in
/// the VIP's table, or `None` when the VIP has no usable backend.
#[inline(always)]
pub const fn maglev_slot(vip: &VipInfo, hash: u32) -> Option<u32> {
    if vip.table_size == 0 {
        return None;
    }
    Some(vip.table_offset + hash % vip.table_size)
}

/// Whether the VIP's packets consult and fill the connection table.
#[inline(always)]
pub const fn uses_flow_table(vip_flags: u32) -> bool {
    vip_flags & VIP_F_NO_FLOW_TABLE == 0
}

/// Whether backend slot `id` (holding `backend`) may take a packet for VIP
/// `vip_id`. Ids are recycled by the daemon, so neither a stale
/// connection-table entry nor a table slot is trusted blindly: the slot must
/// be in use and belong to this VIP.
#[inline(always)]
pub const fn is_live_backend(id: u32, backend: &Backend, vip_id: u32) -> bool {
    id != NO_BACKEND && backend.is_active() && backend.vip_id == vip_id
}

/// Whether the data plane looks the packet up in the connection table at
/// all: not for a VIP that bypasses it, and not for a packet that opens a
/// connection (it would not follow any entry, see [`flow_entry_use`]).
#[inline(always)]
pub const fn consults_flow_table(vip_flags: u32, packet: &PacketFacts) -> bool {
    uses_flow_table(vip_flags) && !packet.opens_connection()
}

/// Whether `entry`, naming backend slot `id` (holding `backend`), is followed
/// for `packet` to `vip`; otherwise the packet goes through the VIP's table
/// (and, see [`creates_flow_entry`], the entry is replaced).
///
/// - The backend must still be a live backend of this VIP.
/// - A TCP SYN without ACK never follows an entry: new connections (SYN
///   retransmits, re-used 5-tuples) go to a backend that takes new
///   connections. Other packets of established connections follow their
///   entry to a drained (weight 0) backend.
/// - A backend that failed its health check is not followed, unless the VIP
///   fails open (every weighted backend is unhealthy: then all are kept).
/// - A UDP entry idle longer than the VIP's UDP idle timeout is expired
///   (`now - last_seen > timeout`). TCP entries do not expire: they live
///   until the LRU evicts them.
#[inline(always)]
pub const fn flow_entry_use(
    id: u32,
    backend: &Backend,
    vip: &VipInfo,
    entry: &FlowValue,
    packet: &PacketFacts,
) -> FlowEntryUse {
    if !is_live_backend(id, backend, vip.vip_id) {
        FlowEntryUse::BackendGone
    } else if packet.opens_connection() {
        FlowEntryUse::NewConnection
    } else if !backend.is_healthy() && vip.flags & VIP_F_FAIL_OPEN == 0 {
        FlowEntryUse::BackendUnhealthy
    } else if packet.proto != PROTO_TCP
        && packet.now_ns.saturating_sub(entry.last_seen_ns) > vip.udp_idle_timeout_ns()
    {
        FlowEntryUse::Expired
    } else {
        FlowEntryUse::Follow
    }
}

/// [`flow_entry_use`] is [`FlowEntryUse::Follow`].
#[inline(always)]
pub const fn follows_flow_entry(
    id: u32,
    backend: &Backend,
    vip: &VipInfo,
    entry: &FlowValue,
    packet: &PacketFacts,
) -> bool {
    matches!(
        flow_entry_use(id, backend, vip, entry, packet),
        FlowEntryUse::Follow
    )
}

/// Whether a followed entry's `last_seen_ns` is moved to the packet's time:
/// UDP entries only (TCP entries do not expire), and only once the stored
/// time is older than 1/8 of the VIP's idle timeout, so that most packets
/// only read the entry shared by every CPU. An active flow is therefore
/// never seen idle for more than its gaps plus 1/8 of the timeout.
#[inline(always)]
pub const fn refreshes_flow_entry(vip: &VipInfo, entry: &FlowValue, packet: &PacketFacts) -> bool {
    packet.proto != PROTO_TCP
        && packet.now_ns.saturating_sub(entry.last_seen_ns) > vip.udp_idle_timeout_ns() >> 3
}

/// Whether a packet that went through the VIP's table leaves a (new or
/// replacing) connection-table entry: only for VIPs that use the table;
/// never for a bare TCP SYN (spoofed SYNs must not touch the table: the
/// connection's entry is created by its first packet that is not a bare
/// SYN, the handshake's ACK, which follows the same table slot), and never
/// for a TCP RST (it ends a connection; spoofed RSTs must not fill the
/// table either). Flood mode may still skip the insert
/// (`policy::flood_admits_insert`).
#[inline(always)]
pub const fn creates_flow_entry(vip_flags: u32, packet: &PacketFacts) -> bool {
    uses_flow_table(vip_flags) && !packet.is_reset() && !packet.opens_connection()
}

/// Whether a bare TCP SYN re-points the flow's existing connection-table
/// entry (if it has one and it names another backend) to the backend the
/// VIP's table gave the SYN. Without this, a SYN that re-uses the 5-tuple of
/// an old connection (client port reuse) goes to its new backend while the
/// handshake's ACK follows the stale entry to the old one, and the
/// connection breaks. Only an existing entry is written, never a new one:
/// spoofed SYNs from unknown sources still never touch the table.
#[inline(always)]
pub const fn repins_flow_entry(vip_flags: u32, packet: &PacketFacts) -> bool {
    uses_flow_table(vip_flags) && packet.opens_connection()
}

/// Whether a packet that follows no connection-table entry is a new
/// connection, which the VIP's rate limits count: a bare TCP SYN, or a UDP
/// packet of a VIP with a connection table (a flow without an entry, or
/// whose entry expired or is not followed). Other TCP packets without an
/// entry (the handshake's ACK, packets of connections the table lost) are
/// never limited: limits only ever refuse connections being opened.
#[inline(always)]
pub const fn is_new_connection(vip_flags: u32, packet: &PacketFacts) -> bool {
    if packet.proto == PROTO_TCP {
        packet.opens_connection()
    } else {
        uses_flow_table(vip_flags)
    }
}

/// How an encapsulated frame leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Egress {
    /// Back out of the ingress interface (XDP_TX), with the frame's tag if
    /// it has one.
    Tx,
    /// Untagged, out of another interface (a redirect through `XLB_TX_PORTS`).
    Redirect,
    /// The FIB's egress is on another VLAN than the frame: dropped
    /// (`vlan_mismatch`), never sent with a wrong tag or none.
    VlanMismatch,
}

/// Where an encapsulated frame that arrived on `ingress` goes when the FIB
/// routes it out of `egress` (whose `XLB_VLANS` entry is `egress_vlan`).
/// `tpid` is the frame's tag protocol (host order, 0 when untagged) and `tci`
/// its tag as on the wire; the frame keeps its tag, so:
///
/// - an untagged frame leaves by the ingress interface itself (XDP_TX), or
///   is redirected to another ordinary device; never to a VLAN device (it
///   has no XDP transmit, and the tag would have to be invented);
/// - a tagged frame leaves only on its own VLAN: the egress is a VLAN device
///   of the ingress interface with the frame's TPID and VLAN id, and the
///   frame is sent back out of the ingress interface, tag and all;
/// - anything else (a tagged frame routed to an untagged interface or to
///   another VLAN or parent, an untagged frame routed to a VLAN device) is a
///   mismatch.
#[inline(always)]
pub const fn egress(
    ingress: u32,
    tpid: u16,
    tci: [u8; 2],
    egress: u32,
    egress_vlan: &VlanDevice,
) -> Egress {
    if tpid == 0 {
        if egress == ingress {
            Egress::Tx
        } else if egress_vlan.is_vlan() {
            Egress::VlanMismatch
        } else {
            Egress::Redirect
        }
    } else if egress_vlan.parent_ifindex == ingress && egress_vlan.carries(tpid, tci) {
        Egress::Tx
    } else {
        Egress::VlanMismatch
    }
}

#[cfg(test)]
mod tests {
    use core::net::IpAddr;

    use super::*;
    use crate::maps::PROTO_UDP;

    fn flow(dport: u16) -> FlowKey {
        FlowKey::new(
            IpAddr::from([192, 0, 2, 1]),
            40000,
            IpAddr::from([10, 100, 0, 1]),
            dport,
            PROTO_TCP,
        )
        .expect("same family")
    }

    #[test]
    fn exact_port_before_port_zero() {
        let vip = IpAddr::from([10, 100, 0, 1]);
        let exact = VipKey::new(vip, 80, PROTO_TCP);
        let any = VipKey::new(vip, 0, PROTO_TCP);
        let both = |k: &VipKey| (*k == exact || *k == any).then_some(*k);
        assert_eq!(
            lookup_vip(&mut VipKey::of_flow(&flow(80)), both),
            Some(exact)
        );
        assert_eq!(lookup_vip(&mut VipKey::of_flow(&flow(81)), both), Some(any));
        let only_exact = |k: &VipKey| (*k == exact).then_some(*k);
        assert_eq!(
            lookup_vip(&mut VipKey::of_flow(&flow(81)), only_exact),
            None
        );
    }

    #[test]
    fn address_markers() {
        let marker = VipKey::marker(IpAddr::from([10, 100, 0, 1]));
        let get = |k: &VipKey| (*k == marker).then_some(());
        assert!(is_vip_address(&mut VipKey::of_flow(&flow(9)), get));
        let other = FlowKey::new(
            IpAddr::from([192, 0, 2, 1]),
            1,
            IpAddr::from([10, 100, 0, 2]),
            9,
            PROTO_TCP,
        )
        .expect("same family");
        assert!(!is_vip_address(&mut VipKey::of_flow(&other), get));
    }

    #[test]
    fn markers_answer_pings_and_place_fragments() {
        use crate::maps::PROTO_UDP;
        let addr = IpAddr::from([10, 100, 0, 1]);
        let marker = VipInfo::marker(true, None, Some(0));
        let marker_key = VipKey::marker(addr);
        let get = |k: &VipKey| (*k == marker_key).then_some(marker);
        let found = address_marker(&mut VipKey::of_flow(&flow(9)), get).expect("a VIP address");
        assert!(answers_ping(&found));
        assert!(!answers_ping(&VipInfo::marker(false, Some(1), None)));
        let mut k = marker_key;
        assert!(fragment_vip(&found, PROTO_UDP, &mut k));
        assert_eq!(k, VipKey::new(addr, 0, PROTO_UDP));
        let mut k = marker_key;
        assert!(!fragment_vip(&found, PROTO_TCP, &mut k));
        assert!(!fragment_vip(&found, 1, &mut k));
        assert!(balances_fragments(VIP_F_SOURCE_HASH | VIP_F_NO_FLOW_TABLE));
        assert!(!balances_fragments(VIP_F_NO_FLOW_TABLE));
    }

    #[test]
    fn hash_follows_the_vip_flag() {
        let k = flow(80);
        assert_eq!(vip_hash(7, 0, &k), flow_hash(7, &k));
        assert_eq!(vip_hash(7, VIP_F_SOURCE_HASH, &k), source_hash(7, &k));
        assert_ne!(vip_hash(7, 0, &k), vip_hash(8, 0, &k), "the seed matters");
    }

    #[test]
    fn slots_stay_inside_the_vip_table() {
        let vip = VipInfo::new(2, 0, 2 * 7, 7);
        for h in [0, 1, 6, 7, 8, u32::MAX] {
            let s = maglev_slot(&vip, h).expect("has a table");
            assert!((14..21).contains(&s), "{h} -> {s}");
            assert_eq!(s, 14 + h % 7);
        }
        assert_eq!(maglev_slot(&VipInfo::new(2, 0, 14, 0), 5), None);
    }

    #[test]
    fn live_backends() {
        let b = Backend::new(IpAddr::from([10, 0, 0, 11]), 3, 100, true);
        assert!(is_live_backend(5, &b, 3));
        assert!(!is_live_backend(5, &b, 4), "another VIP's backend");
        assert!(
            !is_live_backend(NO_BACKEND, &b, 3),
            "id 0 is never a backend"
        );
        assert!(
            !is_live_backend(5, &Backend::default(), 0),
            "a cleared slot"
        );
        assert!(uses_flow_table(VIP_F_SOURCE_HASH));
        assert!(!uses_flow_table(VIP_F_NO_FLOW_TABLE));
    }

    const SEC: u64 = 1_000_000_000;

    fn tcp(flags: u8) -> PacketFacts {
        PacketFacts {
            proto: PROTO_TCP,
            tcp_flags: flags,
            now_ns: 1000 * SEC,
        }
    }

    fn udp(now_ns: u64) -> PacketFacts {
        PacketFacts {
            proto: PROTO_UDP,
            tcp_flags: 0,
            now_ns,
        }
    }

    #[test]
    fn flow_entries_of_live_healthy_backends_are_followed() {
        let b = Backend::new(IpAddr::from([10, 0, 0, 11]), 3, 100, true);
        let vip = VipInfo::new(3, 0, 0, 7);
        let entry = FlowValue::new(5, 999 * SEC);
        for flags in [TCP_FLAG_ACK, TCP_FLAG_ACK | TCP_FLAG_FIN, 0, TCP_FLAG_RST] {
            assert!(follows_flow_entry(5, &b, &vip, &entry, &tcp(flags)));
        }
        assert!(follows_flow_entry(5, &b, &vip, &entry, &udp(1000 * SEC)));
        let other_vip = VipInfo::new(4, 0, 0, 7);
        assert_eq!(
            flow_entry_use(5, &b, &other_vip, &entry, &tcp(TCP_FLAG_ACK)),
            FlowEntryUse::BackendGone
        );
        assert_eq!(
            flow_entry_use(5, &Backend::default(), &vip, &entry, &tcp(TCP_FLAG_ACK)),
            FlowEntryUse::BackendGone
        );
    }

    #[test]
    fn a_bare_syn_never_follows_an_entry() {
        let b = Backend::new(IpAddr::from([10, 0, 0, 11]), 3, 0, true);
        let vip = VipInfo::new(3, 0, 0, 7);
        let entry = FlowValue::new(5, 0);
        assert_eq!(
            flow_entry_use(5, &b, &vip, &entry, &tcp(TCP_FLAG_SYN)),
            FlowEntryUse::NewConnection
        );
        assert!(!consults_flow_table(0, &tcp(TCP_FLAG_SYN)));
        // SYN-ACK and plain ACKs of a drained backend's connections follow.
        assert!(follows_flow_entry(
            5,
            &b,
            &vip,
            &entry,
            &tcp(TCP_FLAG_SYN | TCP_FLAG_ACK)
        ));
        assert!(follows_flow_entry(5, &b, &vip, &entry, &tcp(TCP_FLAG_ACK)));
        assert!(consults_flow_table(0, &tcp(TCP_FLAG_ACK)));
        assert!(!consults_flow_table(
            VIP_F_NO_FLOW_TABLE,
            &tcp(TCP_FLAG_ACK)
        ));
        // UDP has no flags: flag-like bytes mean nothing.
        let mut u = udp(0);
        u.tcp_flags = TCP_FLAG_SYN;
        assert!(!u.opens_connection() && !u.is_reset());
    }

    #[test]
    fn unhealthy_backends_are_followed_only_when_failing_open() {
        let sick = Backend::new(IpAddr::from([10, 0, 0, 11]), 3, 100, false);
        let vip = VipInfo::new(3, 0, 0, 7);
        let entry = FlowValue::new(5, 1000 * SEC);
        assert_eq!(
            flow_entry_use(5, &sick, &vip, &entry, &tcp(TCP_FLAG_ACK)),
            FlowEntryUse::BackendUnhealthy
        );
        assert_eq!(
            flow_entry_use(5, &sick, &vip, &entry, &udp(1000 * SEC)),
            FlowEntryUse::BackendUnhealthy
        );
        let open = VipInfo::new(3, VIP_F_FAIL_OPEN, 0, 7);
        assert!(follows_flow_entry(
            5,
            &sick,
            &open,
            &entry,
            &tcp(TCP_FLAG_ACK)
        ));
        assert!(follows_flow_entry(
            5,
            &sick,
            &open,
            &entry,
            &udp(1000 * SEC)
        ));
    }

    #[test]
    fn udp_entries_expire_after_the_idle_timeout_tcp_entries_never() {
        let b = Backend::new(IpAddr::from([10, 0, 0, 11]), 3, 100, true);
        let vip = VipInfo::new(3, 0, 0, 7).with_udp_idle_timeout_ms(30_000);
        let seen = 100 * SEC;
        let entry = FlowValue::new(5, seen);
        assert!(follows_flow_entry(
            5,
            &b,
            &vip,
            &entry,
            &udp(seen + 30 * SEC)
        ));
        assert_eq!(
            flow_entry_use(5, &b, &vip, &entry, &udp(seen + 30 * SEC + 1)),
            FlowEntryUse::Expired
        );
        // A time before the entry's (another clock) is not an expiry.
        assert!(follows_flow_entry(5, &b, &vip, &entry, &udp(seen - SEC)));
        let mut old_tcp = tcp(TCP_FLAG_ACK);
        old_tcp.now_ns = seen + 3600 * SEC;
        assert!(follows_flow_entry(5, &b, &vip, &entry, &old_tcp));
    }

    #[test]
    fn udp_entries_are_refreshed_after_an_eighth_of_the_timeout() {
        let vip = VipInfo::new(3, 0, 0, 7).with_udp_idle_timeout_ms(8_000);
        let entry = FlowValue::new(5, 100 * SEC);
        assert!(!refreshes_flow_entry(&vip, &entry, &udp(101 * SEC)));
        assert!(refreshes_flow_entry(&vip, &entry, &udp(101 * SEC + 1)));
        let mut t = tcp(TCP_FLAG_ACK);
        t.now_ns = 200 * SEC;
        assert!(!refreshes_flow_entry(&vip, &entry, &t));
    }

    #[test]
    fn egress_keeps_frames_on_their_vlan() {
        use crate::maps::{TPID_8021AD, TPID_8021Q};
        const ETH0: u32 = 2;
        const ETH1: u32 = 3;
        const ETH0_100: u32 = 10;
        let none = VlanDevice::NONE;
        let v100 = VlanDevice::new(ETH0, 100, TPID_8021Q);
        let v200 = VlanDevice::new(ETH0, 200, TPID_8021Q);
        let eth1_v100 = VlanDevice::new(ETH1, 100, TPID_8021Q);
        let ad100 = VlanDevice::new(ETH0, 100, TPID_8021AD);
        let tag100 = [0x20, 100]; // priority 1, id 100
                                  // Untagged.
        assert_eq!(egress(ETH0, 0, [0; 2], ETH0, &none), Egress::Tx);
        assert_eq!(egress(ETH0, 0, [0; 2], ETH1, &none), Egress::Redirect);
        assert_eq!(
            egress(ETH0, 0, [0; 2], ETH0_100, &v100),
            Egress::VlanMismatch
        );
        // Tagged 100 on eth0.
        let tagged = |out, vlan: &VlanDevice| egress(ETH0, TPID_8021Q, tag100, out, vlan);
        assert_eq!(tagged(ETH0_100, &v100), Egress::Tx);
        assert_eq!(tagged(ETH0, &none), Egress::VlanMismatch);
        assert_eq!(tagged(ETH1, &none), Egress::VlanMismatch);
        assert_eq!(tagged(11, &v200), Egress::VlanMismatch);
        assert_eq!(tagged(12, &eth1_v100), Egress::VlanMismatch);
        assert_eq!(tagged(13, &ad100), Egress::VlanMismatch);
        assert_eq!(
            egress(ETH0, TPID_8021AD, tag100, 13, &ad100),
            Egress::Tx,
            "802.1ad frames on an 802.1ad device"
        );
        // A VLAN device whose parent is in another namespace matches nothing.
        let foreign = VlanDevice::new(0, 100, TPID_8021Q);
        assert_eq!(tagged(14, &foreign), Egress::VlanMismatch);
    }

    #[test]
    fn resets_and_bare_syns_never_create_entries() {
        assert!(!creates_flow_entry(0, &tcp(TCP_FLAG_SYN)));
        assert!(creates_flow_entry(0, &tcp(TCP_FLAG_SYN | TCP_FLAG_ACK)));
        assert!(creates_flow_entry(0, &tcp(TCP_FLAG_ACK)));
        assert!(creates_flow_entry(0, &udp(0)));
        assert!(!creates_flow_entry(0, &tcp(TCP_FLAG_RST)));
        assert!(!creates_flow_entry(0, &tcp(TCP_FLAG_RST | TCP_FLAG_ACK)));
        assert!(!creates_flow_entry(VIP_F_NO_FLOW_TABLE, &tcp(TCP_FLAG_ACK)));
    }

    #[test]
    fn only_bare_syns_repin_entries() {
        assert!(repins_flow_entry(0, &tcp(TCP_FLAG_SYN)));
        assert!(!repins_flow_entry(0, &tcp(TCP_FLAG_SYN | TCP_FLAG_ACK)));
        assert!(!repins_flow_entry(0, &tcp(TCP_FLAG_ACK)));
        assert!(!repins_flow_entry(0, &udp(0)));
        assert!(!repins_flow_entry(VIP_F_NO_FLOW_TABLE, &tcp(TCP_FLAG_SYN)));
    }

    #[test]
    fn new_connections_are_bare_syns_and_udp_flows_without_entry() {
        assert!(is_new_connection(0, &tcp(TCP_FLAG_SYN)));
        assert!(is_new_connection(VIP_F_NO_FLOW_TABLE, &tcp(TCP_FLAG_SYN)));
        assert!(!is_new_connection(0, &tcp(TCP_FLAG_ACK)));
        assert!(!is_new_connection(0, &tcp(TCP_FLAG_SYN | TCP_FLAG_ACK)));
        assert!(!is_new_connection(0, &tcp(TCP_FLAG_RST)));
        assert!(is_new_connection(0, &udp(0)));
        assert!(
            !is_new_connection(VIP_F_NO_FLOW_TABLE, &udp(0)),
            "without a table no UDP flow is known to be new"
        );
    }
}
