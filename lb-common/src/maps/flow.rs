//! `XLB_FLOWS`, the connection table: 5-tuple -> backend id.

use core::net::IpAddr;

use crate::{
    bytes,
    ip::{from_addr16, to_addr16, FamilyMismatch, FAMILY_V4, FAMILY_V6},
};

/// Key of `XLB_FLOWS`: the 5-tuple as it appears on the wire. The data plane
/// parses a packet straight into one (`set_v4`/`set_v6`/`set_ports`); userspace
/// builds one with [`FlowKey::new`]. 4-byte aligned, so that its addresses
/// are read as words (`bytes::words16`).
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// IPv4 in the first 4 bytes (rest zero), or IPv6.
    pub(crate) src: [u8; 16],
    pub(crate) dst: [u8; 16],
    pub(crate) sport: [u8; 2],
    pub(crate) dport: [u8; 2],
    pub(crate) proto: u8,
    pub(crate) family: u8,
    _pad: [u8; 2],
}

impl FlowKey {
    /// The flow `src:sport -> dst:dport` of IP protocol `proto`; both addresses
    /// must be of one family.
    pub fn new(
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        proto: u8,
    ) -> Result<Self, FamilyMismatch> {
        let (s, family) = to_addr16(src);
        let (d, dst_family) = to_addr16(dst);
        if family != dst_family {
            return Err(FamilyMismatch { a: src, b: dst });
        }
        Ok(Self {
            src: s,
            dst: d,
            sport: sport.to_be_bytes(),
            dport: dport.to_be_bytes(),
            proto,
            family,
            _pad: [0; 2],
        })
    }

    pub fn src(&self) -> IpAddr {
        from_addr16(&self.src, self.family)
    }

    pub fn dst(&self) -> IpAddr {
        from_addr16(&self.dst, self.family)
    }

    pub const fn sport(&self) -> u16 {
        u16::from_be_bytes(self.sport)
    }

    pub const fn dport(&self) -> u16 {
        u16::from_be_bytes(self.dport)
    }

    pub const fn proto(&self) -> u8 {
        self.proto
    }

    pub const fn family(&self) -> u8 {
        self.family
    }

    /// The source in its 16-byte form.
    #[inline(always)]
    pub const fn src16(&self) -> &[u8; 16] {
        &self.src
    }

    /// The destination in its 16-byte form.
    #[inline(always)]
    pub const fn dst16(&self) -> &[u8; 16] {
        &self.dst
    }

    /// The destination port as on the wire.
    #[inline(always)]
    pub const fn dport_be(&self) -> [u8; 2] {
        self.dport
    }

    /// Fills addresses and family from an IPv4 header (`self` must start
    /// zeroed: the rest of the 16-byte address fields stays zero).
    #[inline(always)]
    pub fn set_v4(&mut self, src: &[u8; 4], dst: &[u8; 4]) {
        bytes::copy_v4(&mut self.src, src);
        bytes::copy_v4(&mut self.dst, dst);
        self.family = FAMILY_V4;
    }

    /// Fills addresses and family from an IPv6 header.
    #[inline(always)]
    pub fn set_v6(&mut self, src: &[u8; 16], dst: &[u8; 16]) {
        bytes::copy(&mut self.src, src);
        bytes::copy(&mut self.dst, dst);
        self.family = FAMILY_V6;
    }

    /// Fills the transport protocol (after IPv6 extension headers). Set
    /// after the addresses: read from the packet at the last moment, it
    /// costs the verifier fewer states than a value held across the copies.
    #[inline(always)]
    pub fn set_proto(&mut self, proto: u8) {
        self.proto = proto;
    }

    /// Fills the ports (as on the wire) from a TCP/UDP header.
    #[inline(always)]
    pub fn set_ports(&mut self, sport: [u8; 2], dport: [u8; 2]) {
        self.sport = sport;
        self.dport = dport;
    }
}

/// Value of `XLB_FLOWS`: the backend a flow is pinned to, and when it was
/// last seen (see [`crate::decision::flow_entry_use`] for when an entry is
/// followed).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowValue {
    pub backend_id: u32,
    /// The VIP's `VipPolicy::access_generation` under which the flow's
    /// source was last found allowed (0: never checked). While it is the
    /// VIP's current one, the flow's packets skip the source-prefix lookup
    /// (`crate::policy::source_access_current`).
    pub access_generation: u32,
    /// Coarse monotonic time (ns: `bpf_ktime_get_coarse_ns`, which is
    /// `CLOCK_MONOTONIC_COARSE` in userspace) of the entry's creation. For UDP
    /// the data plane moves it forward in place while the flow is active
    /// (only once it is older than 1/8 of the VIP's idle timeout, so most
    /// packets do not write the shared entry); an entry idle longer than the
    /// timeout is expired. TCP entries keep their creation time.
    pub last_seen_ns: u64,
}

impl FlowValue {
    /// An entry naming backend `backend_id`, seen at `now_ns`, whose source
    /// has not been checked against any access generation.
    pub const fn new(backend_id: u32, now_ns: u64) -> Self {
        Self {
            backend_id,
            access_generation: 0,
            last_seen_ns: now_ns,
        }
    }

    /// The entry with its source found allowed under `generation`.
    pub const fn with_access_generation(self, generation: u32) -> Self {
        Self {
            access_generation: generation,
            ..self
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, integers and byte arrays only, no implicit
// padding (pinned by `layout` below).
unsafe impl aya::Pod for FlowKey {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for FlowValue {}

#[cfg(test)]
mod layout {
    use core::mem::{align_of, offset_of, size_of};

    use super::*;
    use crate::maps::PROTO_UDP;

    #[test]
    fn flow_key_and_value() {
        assert_eq!(size_of::<FlowKey>(), 40);
        assert_eq!(align_of::<FlowKey>(), 4);
        assert_eq!(offset_of!(FlowKey, dst), 16);
        assert_eq!(offset_of!(FlowKey, sport), 32);
        assert_eq!(offset_of!(FlowKey, dport), 34);
        assert_eq!(offset_of!(FlowKey, proto), 36);
        assert_eq!(offset_of!(FlowKey, family), 37);
        assert_eq!(size_of::<FlowValue>(), 16);
        assert_eq!(align_of::<FlowValue>(), 8);
        assert_eq!(offset_of!(FlowValue, backend_id), 0);
        assert_eq!(offset_of!(FlowValue, access_generation), 4);
        assert_eq!(offset_of!(FlowValue, last_seen_ns), 8);
        let v = FlowValue::new(7, 123);
        assert_eq!((v.backend_id, v.last_seen_ns), (7, 123));
    }

    #[test]
    fn constructor_and_setters_agree() {
        let (src, dst) = ([192, 0, 2, 1], [10, 100, 0, 1]);
        let k = FlowKey::new(IpAddr::from(src), 4000, IpAddr::from(dst), 53, PROTO_UDP)
            .expect("same family");
        let mut parsed = FlowKey::default();
        parsed.set_v4(&src, &dst);
        parsed.set_proto(PROTO_UDP);
        parsed.set_ports(4000u16.to_be_bytes(), 53u16.to_be_bytes());
        assert_eq!(parsed, k);
        assert_eq!(
            (k.src(), k.sport(), k.dst(), k.dport()),
            (IpAddr::from(src), 4000, IpAddr::from(dst), 53)
        );

        let (s6, d6) = (
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0xfd; 16],
        );
        let k6 =
            FlowKey::new(IpAddr::from(s6), 1, IpAddr::from(d6), 2, PROTO_UDP).expect("same family");
        let mut p6 = FlowKey::default();
        p6.set_v6(&s6, &d6);
        p6.set_proto(PROTO_UDP);
        p6.set_ports(1u16.to_be_bytes(), 2u16.to_be_bytes());
        assert_eq!(p6, k6);
    }

    #[test]
    fn families_must_match() {
        let e = FlowKey::new(IpAddr::from([1, 2, 3, 4]), 1, IpAddr::from([0u8; 16]), 2, 6);
        assert!(e.is_err());
    }
}
