//! The end-to-end benchmark's traffic generator, `xlb_gen` (lb-ebpf's
//! `aux_programs.rs`): the template it writes over every packet
//! ([`GenFrame`], the value of [`FRAME_MAP`]) and the arithmetic that gives
//! frame `n` its source port and L4 checksum. The XDP program and the
//! benchmark both call these functions, so the benchmark predicts exactly
//! the flows the generator sends.
//!
//! Frame `n` (counted per CPU in [`SEQ_MAP`]) is the template with source
//! port `first_sport + flow_of_frame(n)`: every cycle of `2^flow_bits`
//! frames sends every flow once, in an order unrelated to the port numbers
//! ([`mix`]), and a flow's place in the test run's batches moves by one each
//! cycle (frames at some places of a batch are far likelier to find room in
//! the receiver's ring than others). Its L4 checksum is the template's,
//! updated for the new port (RFC 1624), so no frame costs a full checksum.
//!
//! A template may also vary the low `src_bits` bits of the IPv4 source
//! address ([`GenFrame::with_source_bits`]: a flood from random sources of
//! a prefix): frame `n`'s are [`scatter`]`(n)`'s, unrelated to its port, so
//! (address, port) pairs repeat only after `2^32` frames; the IPv4 header
//! checksum and the L4 checksum (whose pseudo-header holds the address) are
//! updated for the new address word the same way.

use core::fmt;

use crate::{checksum, PROTO_TCP, PROTO_UDP};

/// Bytes of every generated frame: the 64-byte Ethernet minimum without FCS.
pub const GEN_LEN: usize = 60;
/// 8-byte words of the template: [`GEN_LEN`] rounded up.
pub const TEMPLATE_WORDS: usize = GEN_LEN.div_ceil(8);
/// Offset of the low 16 bits of the IPv4 source address.
pub const SRC_LOW_OFF: usize = ETH_LEN + 14;
/// Offset of the IPv4 header checksum.
pub const IP_CSUM_OFF: usize = ETH_LEN + 10;
/// Most source-address bits a template can vary.
pub const MAX_SOURCE_BITS: u8 = 16;
/// Offset of the L4 source port (Ethernet, IPv4 without options).
pub const SPORT_OFF: usize = ETH_LEN + IPV4_LEN;
/// Offset of the UDP checksum.
pub const UDP_CSUM_OFF: usize = SPORT_OFF + 6;
/// Offset of the TCP checksum.
pub const TCP_CSUM_OFF: usize = SPORT_OFF + 16;
/// Most flows a cycle can have: `2^MAX_FLOW_BITS` source ports.
pub const MAX_FLOW_BITS: u8 = 16;

/// Name of the array map (one slot) holding the [`GenFrame`].
pub const FRAME_MAP: &str = "XLB_GEN_FRAME";
/// Name of the per-CPU array map (one `u32` slot) counting the frames built.
pub const SEQ_MAP: &str = "XLB_GEN_SEQ";

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const ETHERTYPE_OFF: usize = 12;
const IP_VIHL_OFF: usize = ETH_LEN;
const IP_PROTO_OFF: usize = ETH_LEN + 9;

/// Value of [`FRAME_MAP`]: the template frame and what `xlb_gen` needs to
/// vary its source port. Built only by [`GenFrame::new`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenFrame {
    /// The frame's bytes as native-endian words (zero after [`GEN_LEN`]):
    /// the program copies them over the packet word by word.
    words: [u64; TEMPLATE_WORDS],
    /// The template's source port (host order): frame `n`'s is this plus
    /// its flow index.
    first_sport: u16,
    /// The template's L4 checksum as a host-order number (the value of the
    /// big-endian field).
    csum: u16,
    /// `PROTO_UDP` or `PROTO_TCP`: where the L4 checksum is.
    proto: u8,
    /// The cycle has `2^flow_bits` flows (source ports).
    flow_bits: u8,
    /// Low bits of the source address each frame sets (0: none).
    src_bits: u8,
    _pad: u8,
    /// The template's low 16 source-address bits and IPv4 header checksum
    /// (host-order values of the big-endian fields).
    src_low: u16,
    ip_csum: u16,
    _pad2: [u8; 4],
}

/// Why a frame cannot be a generator template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenFrameError {
    /// The EtherType is not IPv4 (`ethertype` as on the wire, host order).
    NotIpv4 { ethertype: u16 },
    /// The IPv4 header has options or is not version 4 (its first byte).
    NotPlainIpv4 { version_ihl: u8 },
    /// The L4 protocol is neither UDP nor TCP.
    NotUdpOrTcp { proto: u8 },
    /// More flows than source ports can express.
    TooManyFlowBits { flow_bits: u8 },
    /// More source-address bits than the generator varies.
    TooManySourceBits { src_bits: u8 },
}

impl fmt::Display for GenFrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotIpv4 { ethertype } => {
                write!(f, "the template is not IPv4 (ethertype {ethertype:#06x})")
            }
            Self::NotPlainIpv4 { version_ihl } => write!(
                f,
                "the template's IPv4 header must be 20 bytes without options (first byte \
                 {version_ihl:#04x})"
            ),
            Self::NotUdpOrTcp { proto } => {
                write!(f, "the template is neither UDP nor TCP (protocol {proto})")
            }
            Self::TooManyFlowBits { flow_bits } => write!(
                f,
                "2^{flow_bits} flows do not fit in the source port (at most 2^{MAX_FLOW_BITS})"
            ),
            Self::TooManySourceBits { src_bits } => write!(
                f,
                "{src_bits} source-address bits requested; the generator varies at most \
                 {MAX_SOURCE_BITS}"
            ),
        }
    }
}

impl core::error::Error for GenFrameError {}

impl GenFrame {
    /// The template for `frame` (Ethernet, IPv4 without options, UDP or TCP,
    /// with a valid L4 checksum) cycling through `2^flow_bits` source ports
    /// from the frame's own.
    pub fn new(frame: &[u8; GEN_LEN], flow_bits: u8) -> Result<Self, GenFrameError> {
        let be16 = |off: usize| u16::from_be_bytes([frame[off], frame[off + 1]]);
        let ethertype = be16(ETHERTYPE_OFF);
        if ethertype != 0x0800 {
            return Err(GenFrameError::NotIpv4 { ethertype });
        }
        let version_ihl = frame[IP_VIHL_OFF];
        if version_ihl != 0x45 {
            return Err(GenFrameError::NotPlainIpv4 { version_ihl });
        }
        let proto = frame[IP_PROTO_OFF];
        let csum_off = match proto {
            PROTO_UDP => UDP_CSUM_OFF,
            PROTO_TCP => TCP_CSUM_OFF,
            _ => return Err(GenFrameError::NotUdpOrTcp { proto }),
        };
        if flow_bits > MAX_FLOW_BITS {
            return Err(GenFrameError::TooManyFlowBits { flow_bits });
        }
        let mut bytes = [0u8; TEMPLATE_WORDS * 8];
        bytes[..GEN_LEN].copy_from_slice(frame);
        let mut words = [0u64; TEMPLATE_WORDS];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_ne_bytes(b);
        }
        Ok(Self {
            words,
            first_sport: be16(SPORT_OFF),
            csum: be16(csum_off),
            proto,
            flow_bits,
            src_bits: 0,
            _pad: 0,
            src_low: be16(SRC_LOW_OFF),
            ip_csum: be16(IP_CSUM_OFF),
            _pad2: [0; 4],
        })
    }

    /// The template, each of whose frames also sets the low `src_bits` bits
    /// of the source address (at most [`MAX_SOURCE_BITS`]).
    pub const fn with_source_bits(self, src_bits: u8) -> Result<Self, GenFrameError> {
        if src_bits > MAX_SOURCE_BITS {
            return Err(GenFrameError::TooManySourceBits { src_bits });
        }
        Ok(Self { src_bits, ..self })
    }

    /// Whether frames vary the source address.
    #[inline(always)]
    pub const fn varies_source(&self) -> bool {
        self.src_bits != 0
    }

    /// The low 16 bits of frame `n`'s source address (as the template's
    /// when it does not vary them).
    #[inline(always)]
    pub const fn src_low_of_frame(&self, n: u32) -> u16 {
        let mask = flow_mask(self.src_bits as u32 & 31) as u16;
        (self.src_low & !mask) | (scatter(n) as u16 & mask)
    }

    /// The IPv4 header checksum with source-address low bits `src_low`.
    #[inline(always)]
    pub const fn ip_csum_with_src(&self, src_low: u16) -> u16 {
        l4_csum_update(self.ip_csum, self.src_low, src_low, false)
    }

    /// The L4 checksum of the template with source port `sport` and
    /// source-address low bits `src_low` (in the pseudo-header).
    #[inline(always)]
    pub const fn csum_with(&self, sport: u16, src_low: u16) -> u16 {
        let c = self.csum_with_sport(sport);
        l4_csum_update(c, self.src_low, src_low, self.is_udp())
    }

    /// The template's words, as the program copies them over a packet.
    #[inline(always)]
    pub const fn words(&self) -> &[u64; TEMPLATE_WORDS] {
        &self.words
    }

    /// The template's bytes.
    pub fn frame(&self) -> [u8; GEN_LEN] {
        let mut out = [0u8; GEN_LEN];
        for (chunk, w) in out.chunks_mut(8).zip(self.words) {
            chunk.copy_from_slice(&w.to_ne_bytes()[..chunk.len()]);
        }
        out
    }

    /// The template's source port: that of flow 0.
    #[inline(always)]
    pub const fn first_sport(&self) -> u16 {
        self.first_sport
    }

    /// The cycle has `2^flow_bits` flows.
    #[inline(always)]
    pub const fn flow_bits(&self) -> u32 {
        // Masked: the program reads whatever is in the map.
        self.flow_bits as u32 & 31
    }

    /// Source port of frame `n`.
    #[inline(always)]
    pub const fn sport_of_frame(&self, n: u32) -> u16 {
        sport_of_frame(self.first_sport, n, self.flow_bits())
    }

    /// Offset of the L4 checksum.
    #[inline(always)]
    pub const fn csum_offset(&self) -> usize {
        if self.is_udp() {
            UDP_CSUM_OFF
        } else {
            TCP_CSUM_OFF
        }
    }

    /// The L4 checksum of the template with source port `sport`.
    #[inline(always)]
    pub const fn csum_with_sport(&self, sport: u16) -> u16 {
        l4_csum_update(self.csum, self.first_sport, sport, self.is_udp())
    }

    #[inline(always)]
    const fn is_udp(&self) -> bool {
        self.proto == PROTO_UDP
    }
}

/// `2^flow_bits - 1`.
#[inline(always)]
pub const fn flow_mask(flow_bits: u32) -> u32 {
    (1u32 << (flow_bits & 31)).wrapping_sub(1)
}

/// A bijection of the flow indexes `0 .. 2^flow_bits` (`x` is masked first):
/// xorshift-multiply rounds, each a bijection on the masked bits, so
/// neighbouring indexes land far apart.
#[inline(always)]
pub const fn mix(x: u32, flow_bits: u32) -> u32 {
    let mask = flow_mask(flow_bits);
    let s = (flow_bits & 31).div_ceil(2);
    let mut x = x & mask;
    x ^= x >> s;
    x = x.wrapping_mul(0x9e37_79b1) & mask;
    x ^= x >> s;
    x = x.wrapping_mul(0x85eb_ca6b) & mask;
    x ^= x >> s;
    x
}

/// A bijection of all 32-bit values (murmur3's finalizer): the source
/// address bits of frame `n`, unrelated to its port.
#[inline(always)]
pub const fn scatter(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    x = x.wrapping_mul(0xc2b2_ae35);
    x ^= x >> 16;
    x
}

/// The flow index of frame `n`: `mix((n + cycle) mod 2^flow_bits)`, `cycle`
/// being `n >> flow_bits`, so a flow's place in the batches moves by one
/// each cycle.
#[inline(always)]
pub const fn flow_of_frame(n: u32, flow_bits: u32) -> u32 {
    mix(n.wrapping_add(n >> (flow_bits & 31)), flow_bits)
}

/// The source port of frame `n` when flow 0 has `first_sport`.
#[inline(always)]
pub const fn sport_of_frame(first_sport: u16, n: u32, flow_bits: u32) -> u16 {
    first_sport.wrapping_add(flow_of_frame(n, flow_bits) as u16)
}

/// RFC 1624 (eqn. 3) incremental update of an L4 checksum `csum` (host-order
/// value of the field) when a 16-bit word changes from `old` to `new`:
/// `HC' = ~(~HC + ~m + m')`. For UDP a computed zero is sent as `0xffff`
/// (zero means "no checksum").
#[inline(always)]
pub const fn l4_csum_update(csum: u16, old: u16, new: u16, udp: bool) -> u16 {
    let c = checksum::fold(!csum as u32 + !old as u32 + new as u32);
    if udp && c == 0 {
        0xffff
    } else {
        c
    }
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, made only of integers and an integer array,
// with no implicit padding (pinned by `tests::layout`).
unsafe impl aya::Pod for GenFrame {}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::mem::{offset_of, size_of};
    use std::{collections::BTreeSet, vec::Vec};

    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    use super::*;

    #[test]
    fn layout() {
        assert_eq!(size_of::<GenFrame>(), 80);
        assert_eq!(core::mem::align_of::<GenFrame>(), 8);
        assert_eq!(offset_of!(GenFrame, words), 0);
        assert_eq!(offset_of!(GenFrame, first_sport), 64);
        assert_eq!(offset_of!(GenFrame, csum), 66);
        assert_eq!(offset_of!(GenFrame, proto), 68);
        assert_eq!(offset_of!(GenFrame, flow_bits), 69);
        assert_eq!(offset_of!(GenFrame, src_bits), 70);
        assert_eq!(offset_of!(GenFrame, _pad), 71);
        assert_eq!(offset_of!(GenFrame, src_low), 72);
        assert_eq!(offset_of!(GenFrame, ip_csum), 74);
        assert_eq!(offset_of!(GenFrame, _pad2), 76);
        assert!(FRAME_MAP.len() <= 15 && SEQ_MAP.len() <= 15);
    }

    /// A 60-byte frame from 10.31.0.2:`sport` to 10.30.0.1:80, built by
    /// etherparse: UDP with a payload, or a TCP SYN (zero-padded).
    fn frame(proto: u8, sport: u16) -> [u8; GEN_LEN] {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(
            [10, 31, 0, 2],
            [10, 30, 0, 1],
            64,
        );
        let mut out = Vec::new();
        match proto {
            PROTO_UDP => {
                let payload = b"xlb e2e udp 64byte";
                b.udp(sport, 80).write(&mut out, payload).unwrap();
            }
            _ => {
                b.tcp(sport, 80, 7, 64_240)
                    .syn()
                    .write(&mut out, &[])
                    .unwrap();
            }
        }
        assert!(out.len() <= GEN_LEN, "{} bytes", out.len());
        out.resize(GEN_LEN, 0);
        out.try_into().unwrap()
    }

    /// What `xlb_gen` writes for frame `n`.
    fn generated(t: &GenFrame, n: u32) -> [u8; GEN_LEN] {
        let mut f = t.frame();
        let sport = t.sport_of_frame(n);
        f[SPORT_OFF..SPORT_OFF + 2].copy_from_slice(&sport.to_be_bytes());
        let off = t.csum_offset();
        if t.varies_source() {
            let low = t.src_low_of_frame(n);
            f[SRC_LOW_OFF..SRC_LOW_OFF + 2].copy_from_slice(&low.to_be_bytes());
            f[IP_CSUM_OFF..IP_CSUM_OFF + 2].copy_from_slice(&t.ip_csum_with_src(low).to_be_bytes());
            f[off..off + 2].copy_from_slice(&t.csum_with(sport, low).to_be_bytes());
        } else {
            f[off..off + 2].copy_from_slice(&t.csum_with_sport(sport).to_be_bytes());
        }
        f
    }

    /// (source port, checksum in the frame, checksum recomputed in full).
    fn checksums(f: &[u8]) -> (u16, u16, u16) {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        let (src, dst) = (
            ip.header().source_addr().octets(),
            ip.header().destination_addr().octets(),
        );
        match &p.transport {
            Some(TransportSlice::Udp(u)) => {
                let full = u
                    .to_header()
                    .calc_checksum_ipv4_raw(src, dst, u.payload())
                    .unwrap();
                (u.source_port(), u.checksum(), full)
            }
            Some(TransportSlice::Tcp(t)) => {
                let full = t
                    .to_header()
                    .calc_checksum_ipv4_raw(src, dst, t.payload())
                    .unwrap();
                (t.source_port(), t.checksum(), full)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_template_keeps_the_frame() {
        for proto in [PROTO_UDP, PROTO_TCP] {
            let f = frame(proto, 10_000);
            let t = GenFrame::new(&f, 14).unwrap();
            assert_eq!(t.frame(), f);
            assert_eq!(t.first_sport(), 10_000);
            assert_eq!(t.flow_bits(), 14);
            let off = if proto == PROTO_UDP { 40 } else { 50 };
            assert_eq!(t.csum_offset(), off);
            assert_eq!(checksums(&f).1, u16::from_be_bytes([f[off], f[off + 1]]));
        }
    }

    #[test]
    fn templates_that_cannot_work_are_refused() {
        let good = frame(PROTO_UDP, 1);
        let mut f = good;
        f[12] = 0x86;
        assert!(matches!(
            GenFrame::new(&f, 1),
            Err(GenFrameError::NotIpv4 { .. })
        ));
        let mut f = good;
        f[14] = 0x46;
        assert_eq!(
            GenFrame::new(&f, 1),
            Err(GenFrameError::NotPlainIpv4 { version_ihl: 0x46 })
        );
        let mut f = good;
        f[23] = 1;
        assert_eq!(
            GenFrame::new(&f, 1),
            Err(GenFrameError::NotUdpOrTcp { proto: 1 })
        );
        assert_eq!(
            GenFrame::new(&good, 17),
            Err(GenFrameError::TooManyFlowBits { flow_bits: 17 })
        );
    }

    #[test]
    fn mix_is_a_bijection_on_the_masked_bits() {
        for bits in [0u32, 1, 2, 3, 5, 8, 13, 14, 16] {
            let n = 1u32 << bits;
            let seen: BTreeSet<u32> = (0..n).map(|x| mix(x, bits)).collect();
            assert_eq!(seen.len(), n as usize, "flow_bits {bits}");
            assert!(seen.iter().all(|&x| x < n), "flow_bits {bits}");
            // Bits above the mask do not matter.
            assert_eq!(mix(n + 3, bits), mix(3, bits));
        }
    }

    #[test]
    fn every_cycle_sends_every_flow_once() {
        for bits in [0u32, 1, 4, 10, 14] {
            let flows = 1u32 << bits;
            for cycle in [0, 1, 7] {
                let seen: BTreeSet<u32> = (0..flows)
                    .map(|i| flow_of_frame(cycle * flows + i, bits))
                    .collect();
                assert_eq!(seen.len(), flows as usize);
            }
        }
    }

    #[test]
    fn the_updated_checksum_equals_a_full_recomputation() {
        for proto in [PROTO_UDP, PROTO_TCP] {
            // Every source port, from templates whose checksums differ.
            for first in [0u16, 1, 10_000, 65_535] {
                let t = GenFrame::new(&frame(proto, first), 16).unwrap();
                let mut ports = BTreeSet::new();
                for n in 0..1u32 << 16 {
                    let (sport, csum, full) = checksums(&generated(&t, n));
                    assert_eq!(sport, t.sport_of_frame(n));
                    assert_eq!(csum, full, "proto {proto}, port {sport}");
                    assert_ne!((proto, csum), (PROTO_UDP, 0));
                    ports.insert(sport);
                }
                assert_eq!(ports.len(), 1 << 16);
            }
        }
    }

    /// Frames from random sources: every address of the varied bits
    /// appears, the bits above them stay, and both checksums equal a full
    /// recomputation (etherparse's).
    #[test]
    fn varied_sources_keep_both_checksums_right() {
        for proto in [PROTO_UDP, PROTO_TCP] {
            let t = GenFrame::new(&frame(proto, 1024), 16)
                .unwrap()
                .with_source_bits(12)
                .unwrap();
            let mut sources = BTreeSet::new();
            let mut pairs = BTreeSet::new();
            for n in 0..1u32 << 17 {
                let f = generated(&t, n);
                let p = SlicedPacket::from_ethernet(&f).unwrap();
                let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
                    panic!("not IPv4")
                };
                let h = ip.header().to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum(), "frame {n}");
                let src = h.source;
                assert_eq!(&src[..2], &[10, 31], "bits above the prefix stay");
                assert_eq!(src[2] & 0xf0, 0, "bits above the 12 varied stay");
                let (sport, csum, full) = checksums(&f);
                assert_eq!(csum, full, "proto {proto}, frame {n}");
                sources.insert(src);
                pairs.insert((src, sport));
            }
            assert_eq!(sources.len(), 1 << 12, "every source of the prefix");
            assert!(pairs.len() > 120_000, "{} distinct flows", pairs.len());
        }
        assert_eq!(
            GenFrame::new(&frame(PROTO_TCP, 1), 1)
                .unwrap()
                .with_source_bits(17),
            Err(GenFrameError::TooManySourceBits { src_bits: 17 })
        );
    }

    #[test]
    fn a_zero_udp_checksum_is_sent_as_all_ones() {
        // A word going from 0 to 1 takes checksum 0x0001 to 0: UDP sends
        // 0xffff instead, TCP 0.
        assert_eq!(l4_csum_update(0x0001, 0, 1, false), 0);
        assert_eq!(l4_csum_update(0x0001, 0, 1, true), 0xffff);
        // Nothing changes when the word does not.
        assert_eq!(l4_csum_update(0x1234, 80, 80, true), 0x1234);
    }
}
