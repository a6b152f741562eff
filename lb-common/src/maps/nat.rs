//! Full NAT (`forwarding = "nat"`): its settings inside `XLB_CONFIG`
//! ([`NatConfig`]), its sessions in both directions (`XLB_NAT_FWD`: the
//! client's flow -> [`NatSession`]; `XLB_NAT_REV`: the backend's reply flow
//! -> [`NatEntry`]) and its counters (`XLB_NAT_STATS`). The rules that read
//! them are `crate::nat`.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::{
    ip::{FAMILY_V4, FAMILY_V6},
    maps::FlowKey,
};

/// Most NAT addresses per family (`nat.sources`).
pub const MAX_NAT_SOURCES: usize = 8;
/// Entries of each session map when the config does not say.
pub const DEFAULT_NAT_TABLE_SIZE: u32 = 262_144;
/// `nat.ports` when the config does not say: every non-privileged port.
pub const DEFAULT_NAT_PORT_MIN: u16 = 1024;
pub const DEFAULT_NAT_PORT_MAX: u16 = 65535;

/// Idle timeouts of a NAT session, in seconds, by state (`crate::nat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatTimeouts {
    /// A TCP connection whose handshake has not completed.
    pub tcp_syn_s: u32,
    pub tcp_established_s: u32,
    /// After a FIN or RST in either direction.
    pub tcp_closing_s: u32,
    pub udp_s: u32,
}

impl NatTimeouts {
    /// The defaults: 30 s, 15 min, 60 s (the backend's TIME_WAIT), 60 s.
    pub const DEFAULT: Self = Self {
        tcp_syn_s: 30,
        tcp_established_s: 900,
        tcp_closing_s: 60,
        udp_s: 60,
    };
}

/// The NAT part of `XLB_CONFIG`'s entry (`GlobalConfig::nat`). All zero:
/// no NAT address, NAT off (the data plane then never looks at replies).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatConfig {
    /// IPv4 NAT addresses in the first 4 bytes of each slot; the first
    /// `n_v4` slots are used.
    v4: [[u8; 16]; MAX_NAT_SOURCES],
    v6: [[u8; 16]; MAX_NAT_SOURCES],
    n_v4: u8,
    n_v6: u8,
    _pad: [u8; 2],
    /// NAT ports handed out, both ends included (host order).
    port_min: u16,
    port_max: u16,
    /// Seconds, indexed by session state (`crate::nat::STATE_*`).
    timeouts_s: [u32; 4],
}

impl Default for NatConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// More NAT addresses of one family than [`MAX_NAT_SOURCES`], or a port
/// range whose minimum is above its maximum or includes port 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidNatConfig;

impl NatConfig {
    /// No NAT address (NAT off), the default ports and timeouts.
    pub const DEFAULT: Self = Self {
        v4: [[0; 16]; MAX_NAT_SOURCES],
        v6: [[0; 16]; MAX_NAT_SOURCES],
        n_v4: 0,
        n_v6: 0,
        _pad: [0; 2],
        port_min: DEFAULT_NAT_PORT_MIN,
        port_max: DEFAULT_NAT_PORT_MAX,
        timeouts_s: [0; 4],
    }
    .with_timeouts(NatTimeouts::DEFAULT);

    /// NAT addresses and ports `ports.0 ..= ports.1` (1..=65535), with the
    /// default timeouts.
    pub fn new(
        v4: &[Ipv4Addr],
        v6: &[Ipv6Addr],
        ports: (u16, u16),
    ) -> Result<Self, InvalidNatConfig> {
        if v4.len() > MAX_NAT_SOURCES
            || v6.len() > MAX_NAT_SOURCES
            || ports.0 == 0
            || ports.0 > ports.1
        {
            return Err(InvalidNatConfig);
        }
        let mut c = Self::default();
        for (slot, a) in c.v4.iter_mut().zip(v4) {
            slot[..4].copy_from_slice(&a.octets());
        }
        for (slot, a) in c.v6.iter_mut().zip(v6) {
            *slot = a.octets();
        }
        c.n_v4 = v4.len() as u8;
        c.n_v6 = v6.len() as u8;
        c.port_min = ports.0;
        c.port_max = ports.1;
        Ok(c)
    }

    pub const fn with_timeouts(mut self, t: NatTimeouts) -> Self {
        self.timeouts_s = [t.tcp_syn_s, t.tcp_established_s, t.tcp_closing_s, t.udp_s];
        self
    }

    pub const fn timeouts(&self) -> NatTimeouts {
        NatTimeouts {
            tcp_syn_s: self.timeouts_s[0],
            tcp_established_s: self.timeouts_s[1],
            tcp_closing_s: self.timeouts_s[2],
            udp_s: self.timeouts_s[3],
        }
    }

    /// Whether any NAT address is configured: only then does the data
    /// plane look for replies.
    #[inline(always)]
    pub const fn enabled(&self) -> bool {
        self.n_v4 != 0 || self.n_v6 != 0
    }

    #[inline(always)]
    pub const fn port_range(&self) -> (u16, u16) {
        (self.port_min, self.port_max)
    }

    /// Timeout of state `state` in seconds.
    #[inline(always)]
    pub const fn timeout_s(&self, state: u8) -> u32 {
        self.timeouts_s[(state & 3) as usize]
    }

    /// The NAT address of family `family` a flow with hash `hash` leaves
    /// from (`None` if the family has none).
    #[inline(always)]
    pub fn source_for(&self, family: u8, hash: u32) -> Option<&[u8; 16]> {
        let (list, n) = if family == FAMILY_V4 {
            (&self.v4, self.n_v4)
        } else {
            (&self.v6, self.n_v6)
        };
        if n == 0 {
            return None;
        }
        // Masked for the verifier; `n <= MAX_NAT_SOURCES` (a power of two).
        let i = (hash % u32::from(n)) as usize & (MAX_NAT_SOURCES - 1);
        Some(&list[i])
    }

    /// Whether `addr` (of `family`) is one of the NAT addresses.
    #[inline(always)]
    pub fn is_source(&self, family: u8, addr: &[u8; 16]) -> bool {
        let (list, n) = if family == FAMILY_V4 {
            (&self.v4, self.n_v4)
        } else {
            (&self.v6, self.n_v6)
        };
        let mut i = 0;
        while i < MAX_NAT_SOURCES {
            if i < n as usize && crate::bytes::eq16(&list[i], addr) {
                return true;
            }
            i += 1;
        }
        false
    }

    /// The IPv4 NAT addresses (userspace).
    pub fn sources_v4(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.v4[..usize::from(self.n_v4).min(MAX_NAT_SOURCES)]
            .iter()
            .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]))
    }

    /// The IPv6 NAT addresses (userspace).
    pub fn sources_v6(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.v6[..usize::from(self.n_v6).min(MAX_NAT_SOURCES)]
            .iter()
            .map(|a| Ipv6Addr::from(*a))
    }
}

/// Value of `XLB_NAT_FWD`, keyed by the client's flow (client -> VIP): the
/// NAT address and port the flow leaves from toward its backend. The
/// session's state lives in the reverse entry, which both directions update.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NatSession {
    nat_addr: [u8; 16],
    nat_port: [u8; 2],
    _pad: [u8; 2],
    /// The backend the session was made toward: a flow moved to another
    /// backend gets a new session.
    pub backend_id: u32,
}

impl NatSession {
    pub fn new(nat_addr: &[u8; 16], nat_port: u16, backend_id: u32) -> Self {
        let mut s = Self::default();
        s.fill(nat_addr, nat_port.to_be_bytes(), backend_id);
        s
    }

    /// Makes `self` (zeroed) the session, in place (see `NatEntry::fill`);
    /// the port as on the wire.
    #[inline(always)]
    pub fn fill(&mut self, nat_addr: &[u8; 16], nat_port: [u8; 2], backend_id: u32) {
        crate::bytes::copy(&mut self.nat_addr, nat_addr);
        self.nat_port = nat_port;
        self.backend_id = backend_id;
    }

    #[inline(always)]
    pub const fn nat_addr16(&self) -> &[u8; 16] {
        &self.nat_addr
    }

    #[inline(always)]
    pub const fn nat_port_be(&self) -> [u8; 2] {
        self.nat_port
    }

    pub const fn nat_port(&self) -> u16 {
        u16::from_be_bytes(self.nat_port)
    }
}

/// Value of `XLB_NAT_REV`, keyed by the backend's reply flow (backend:port
/// -> NAT address:NAT port, see [`FlowKey::set_nat_reply`]): the client's
/// flow the reply belongs to, the session's state and when it was last
/// seen (`crate::nat` decides when it may be reclaimed).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NatEntry {
    /// Coarse monotonic time (ns) of the session's last refresh.
    pub last_seen_ns: u64,
    client: [u8; 16],
    vip: [u8; 16],
    client_port: [u8; 2],
    vip_port: [u8; 2],
    /// `crate::nat::STATE_*`.
    pub state: u8,
    _pad: [u8; 3],
}

impl NatEntry {
    /// The reverse entry of the client's flow `flow` (client -> VIP).
    #[inline(always)]
    pub fn new(flow: &FlowKey, state: u8, now_ns: u64) -> Self {
        let mut e = Self::default();
        e.fill(flow, state, now_ns);
        e
    }

    /// Makes `self` (zeroed) the reverse entry of `flow`, in place: the
    /// data plane builds it in a zeroed stack buffer, where a value
    /// returned by [`Self::new`] would be copied again (its bytes kept
    /// live, spilled one by one).
    #[inline(always)]
    pub fn fill(&mut self, flow: &FlowKey, state: u8, now_ns: u64) {
        self.last_seen_ns = now_ns;
        crate::bytes::copy(&mut self.client, &flow.src);
        crate::bytes::copy(&mut self.vip, &flow.dst);
        self.client_port = flow.sport;
        self.vip_port = flow.dport;
        self.state = state;
    }

    /// Whether the entry is `flow`'s (a reclaimed port now serves another).
    #[inline(always)]
    pub fn belongs_to(&self, flow: &FlowKey) -> bool {
        crate::bytes::eq16(&self.client, &flow.src)
            && crate::bytes::eq16(&self.vip, &flow.dst)
            && self.client_port[0] == flow.sport[0]
            && self.client_port[1] == flow.sport[1]
            && self.vip_port[0] == flow.dport[0]
            && self.vip_port[1] == flow.dport[1]
    }

    #[inline(always)]
    pub const fn client16(&self) -> &[u8; 16] {
        &self.client
    }

    #[inline(always)]
    pub const fn vip16(&self) -> &[u8; 16] {
        &self.vip
    }

    #[inline(always)]
    pub const fn client_port_be(&self) -> [u8; 2] {
        self.client_port
    }

    #[inline(always)]
    pub const fn vip_port_be(&self) -> [u8; 2] {
        self.vip_port
    }
}

impl FlowKey {
    /// Makes `self` the flow of the backend's replies to a NAT session:
    /// backend `backend:backend_port` -> `nat_addr:nat_port` (ports as on
    /// the wire), the key of `XLB_NAT_REV`. Every field but the padding is
    /// written (start from a zeroed key).
    #[inline(always)]
    pub fn set_nat_reply(
        &mut self,
        backend: &[u8; 16],
        backend_port: [u8; 2],
        nat_addr: &[u8; 16],
        nat_port: [u8; 2],
        proto: u8,
        family: u8,
    ) {
        crate::bytes::copy(&mut self.src, backend);
        crate::bytes::copy(&mut self.dst, nat_addr);
        self.sport = backend_port;
        self.dport = nat_port;
        self.proto = proto;
        self.family = if family == FAMILY_V4 {
            FAMILY_V4
        } else {
            FAMILY_V6
        };
    }
}

/// Per-CPU value of `XLB_NAT_STATS` (one entry). Exhausted ports and
/// unknown replies are verdicts (`nat_exhausted`, `nat_reply_unknown`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NatStats {
    /// Sessions created (a NAT port allocated).
    pub sessions: u64,
    /// Replies translated back toward their client.
    pub replies: u64,
    /// Ports taken over from an expired session.
    pub reclaimed: u64,
}

impl core::ops::Add for NatStats {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            sessions: self.sessions + o.sessions,
            replies: self.replies + o.replies,
            reclaimed: self.reclaimed + o.reclaimed,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, integers and byte arrays only, no implicit
// padding (pinned by `layout` below).
unsafe impl aya::Pod for NatSession {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for NatEntry {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for NatStats {}

#[cfg(test)]
mod layout {
    use core::{
        mem::{align_of, offset_of, size_of},
        net::IpAddr,
    };

    use super::*;
    use crate::maps::PROTO_TCP;

    #[test]
    fn sizes_and_offsets() {
        assert_eq!(size_of::<NatConfig>(), 280);
        assert_eq!(offset_of!(NatConfig, v6), 128);
        assert_eq!(offset_of!(NatConfig, n_v4), 256);
        assert_eq!(offset_of!(NatConfig, port_min), 260);
        assert_eq!(offset_of!(NatConfig, timeouts_s), 264);
        assert_eq!(size_of::<NatSession>(), 24);
        assert_eq!(offset_of!(NatSession, backend_id), 20);
        assert_eq!(size_of::<NatEntry>(), 48);
        assert_eq!(align_of::<NatEntry>(), 8);
        assert_eq!(offset_of!(NatEntry, client), 8);
        assert_eq!(offset_of!(NatEntry, state), 44);
        assert_eq!(size_of::<NatStats>(), 24);
    }

    #[test]
    fn config_sources_and_ports() {
        let v4 = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
        let v6 = [Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9)];
        let c = NatConfig::new(&v4, &v6, (2000, 3000)).expect("valid");
        assert!(c.enabled() && !NatConfig::default().enabled());
        assert!(c.sources_v4().eq(v4));
        assert!(c.sources_v6().eq(v6));
        assert_eq!(c.port_range(), (2000, 3000));
        assert_eq!(c.timeouts(), NatTimeouts::DEFAULT);
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[10, 0, 0, 2]);
        assert!(c.is_source(FAMILY_V4, &a));
        assert!(!c.is_source(FAMILY_V6, &a));
        assert!(c.is_source(FAMILY_V6, &v6[0].octets()));
        assert_eq!(c.source_for(FAMILY_V4, 3), Some(&a));
        assert_eq!(c.source_for(FAMILY_V6, 3), Some(&v6[0].octets()));
        assert_eq!(NatConfig::default().source_for(FAMILY_V4, 3), None);
        assert_eq!(NatConfig::new(&v4, &[], (0, 10)), Err(InvalidNatConfig));
        assert_eq!(NatConfig::new(&v4, &[], (11, 10)), Err(InvalidNatConfig));
        assert_eq!(
            NatConfig::new(&[v4[0]; 9], &[], (1, 10)),
            Err(InvalidNatConfig)
        );
    }

    #[test]
    fn reply_keys_and_entries() {
        let flow = FlowKey::new(
            IpAddr::from([192, 0, 2, 1]),
            40000,
            IpAddr::from([10, 100, 0, 1]),
            80,
            PROTO_TCP,
        )
        .expect("same family");
        let e = NatEntry::new(&flow, 1, 5);
        assert!(e.belongs_to(&flow));
        let other = FlowKey::new(flow.src(), 40001, flow.dst(), 80, PROTO_TCP).expect("same");
        assert!(!e.belongs_to(&other));

        let mut backend = [0u8; 16];
        backend[..4].copy_from_slice(&[10, 1, 0, 1]);
        let mut nat = [0u8; 16];
        nat[..4].copy_from_slice(&[10, 0, 0, 1]);
        let mut k = FlowKey::default();
        k.set_nat_reply(
            &backend,
            80u16.to_be_bytes(),
            &nat,
            2000u16.to_be_bytes(),
            6,
            FAMILY_V4,
        );
        let want = FlowKey::new(
            IpAddr::from([10, 1, 0, 1]),
            80,
            IpAddr::from([10, 0, 0, 1]),
            2000,
            PROTO_TCP,
        )
        .expect("same family");
        assert_eq!(k, want);
    }
}
