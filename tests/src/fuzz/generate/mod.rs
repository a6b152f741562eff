//! Structure-aware frame generation: Ethernet with zero, one or two VLAN tags
//! (802.1Q and 802.1ad), IPv4 with options and every fragment form, IPv6 with
//! extension chains (hop-by-hop, destination options, routing with and
//! without segments left, fragment, AH, experimental), TCP with options and
//! every flag combination worth trying, UDP, ICMP/ICMPv6 with embedded
//! headers, other protocols; aimed at the installed VIPs, their neighbours
//! and everything else; sized around every path MTU; then, for hostile
//! frames, lying length fields, Ethernet padding and trailing bytes, and
//! truncation at header boundaries or anywhere. Field values favour their
//! boundaries (0, 1, all ones, the VIP's port +-1, TTL 0 and 1, ...).
//!
//! Everything is drawn from one [`Dice`], so a seed reproduces the run.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod headers;
mod hostile;
#[cfg(test)]
mod tests;

use headers::{
    embedded_header, fix_checksums, fix_lengths, ipv4_options, ipv6_extension, neighbour_addr,
    pick_port, pick_tos, pick_ttl, special_or_random_addr, tcp_options, v4, v6,
};

use super::{dice::Dice, mutate, oracle::Model};

/// Largest frame generated (BPF_PROG_TEST_RUN takes up to a page minus
/// head- and tailroom).
pub const MAX_FRAME: usize = 3000;
/// Smallest frame the kernel test-runs.
pub const MIN_FRAME: usize = 14;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
/// Protocols that are neither TCP nor UDP, for frames to VIP addresses.
const OTHER_PROTOS: [u8; 7] = [47, 132, 59, 4, 41, 50, 255];
/// Outer MTUs of the fuzzer's paths and outer header sizes: frames are sized
/// so the encapsulated packet is one byte under, at, and one over each.
const MTUS: [usize; 3] = [1500, 1400, 1300];

/// How a frame was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Generated,
    Mutated,
}

impl Origin {
    pub const fn as_str(self) -> &'static str {
        match self {
            Origin::Generated => "generated",
            Origin::Mutated => "mutated",
        }
    }
}

#[derive(Clone, Copy)]
struct Target {
    dst: IpAddr,
    proto: u8,
    dport: u16,
}

/// Where the headers of the frame being written start.
#[derive(Clone, Copy, Default)]
struct Layout {
    l3: usize,
    v6: bool,
    /// IPv4 header length.
    ihl: usize,
    /// Start of the upper-layer header (after IPv4 options / IPv6
    /// extensions).
    l4: usize,
    proto: u8,
    /// First IPv6 extension header, if any.
    first_ext: Option<usize>,
    /// Where the transport checksum lives (relative to `l4`), if any.
    checksum_at: Option<usize>,
}

pub struct Generator {
    dice: Dice,
    ingress_mac: [u8; 6],
    vips: Vec<(IpAddr, u16, u8)>,
    own: [IpAddr; 2],
}

impl Generator {
    /// Frames aimed at `model`'s VIPs, addressed to `ingress_mac`.
    pub fn new(seed: u64, model: &Model) -> Self {
        Self {
            dice: Dice::new(seed),
            ingress_mac: model.ingress.mac,
            vips: model
                .vips
                .iter()
                .map(|v| (v.addr, v.port, v.proto))
                .collect(),
            own: [
                model
                    .outer_source_v4
                    .map_or(IpAddr::from([10, 0, 0, 1]), IpAddr::V4),
                model
                    .outer_source_v6
                    .map_or(IpAddr::from(Ipv6Addr::LOCALHOST), IpAddr::V6),
            ],
        }
    }

    /// Writes the next frame into `out`: two in three generated (most of
    /// them hostile), one in three a valid frame mutated at random.
    pub fn next_frame(&mut self, out: &mut Vec<u8>) -> Origin {
        if self.dice.chance(1, 3) {
            self.frame(out, false);
            mutate::mutate(&mut self.dice, out);
            Origin::Mutated
        } else {
            let hostile = self.dice.chance(1, 2);
            self.frame(out, hostile);
            Origin::Generated
        }
    }

    /// A frame; `hostile` adds lies, tails and truncation.
    fn frame(&mut self, out: &mut Vec<u8>, hostile: bool) {
        out.clear();
        let t = self.target();
        let v6 = t.dst.is_ipv6();
        if !self.ethernet(out, v6, hostile) {
            return;
        }
        let mut lay = Layout {
            l3: out.len(),
            v6,
            ..Layout::default()
        };
        let src = self.source(v6, t.dst);
        if v6 {
            self.ipv6(out, &t, src, &mut lay, hostile);
        } else {
            self.ipv4(out, &t, src, &mut lay, hostile);
        }
        self.transport(out, &t, src, &mut lay, hostile);
        self.payload(out, &lay);
        fix_lengths(out, &lay);
        fix_checksums(out, &lay);
        if hostile {
            if self.dice.chance(1, 5) {
                self.lie(out, &lay);
            }
            self.tail(out, true);
            if self.dice.chance(1, 7) {
                self.truncate(out, &lay);
            }
        } else {
            self.tail(out, false);
        }
    }

    fn target(&mut self) -> Target {
        let d = &mut self.dice;
        let (addr, port, proto) = d.pick(&self.vips);
        let vip_port = |d: &mut Dice| {
            if port != 0 {
                port
            } else {
                pick_port(d)
            }
        };
        match d.below(100) {
            0..=54 => Target {
                dst: addr,
                proto,
                dport: vip_port(d),
            },
            55..=64 => Target {
                dst: addr,
                proto,
                dport: d.pick_or(
                    &[port.wrapping_sub(1), port.wrapping_add(1), 0, 65535],
                    Dice::u16,
                ),
            },
            65..=74 => {
                let other = if addr.is_ipv4() {
                    PROTO_ICMP
                } else {
                    PROTO_ICMPV6
                };
                let proto = match d.below(4) {
                    0 | 1 => other,
                    2 => d.pick(&OTHER_PROTOS),
                    _ => PROTO_TCP + PROTO_UDP - proto,
                };
                Target {
                    dst: addr,
                    proto,
                    dport: vip_port(d),
                }
            }
            75..=81 => Target {
                dst: neighbour_addr(addr, d),
                proto,
                dport: vip_port(d),
            },
            82..=85 => Target {
                dst: match addr {
                    IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
                    IpAddr::V6(a) => a
                        .to_ipv4_mapped()
                        .map_or(IpAddr::V4(Ipv4Addr::BROADCAST), IpAddr::V4),
                },
                proto,
                dport: vip_port(d),
            },
            86..=90 => Target {
                dst: self.own[d.below(2)],
                proto,
                dport: vip_port(d),
            },
            _ => Target {
                dst: special_or_random_addr(d),
                proto: d.pick(&[PROTO_TCP, PROTO_UDP, PROTO_TCP, PROTO_UDP, PROTO_ICMP]),
                dport: pick_port(d),
            },
        }
    }

    /// A client: one of a few (so flows repeat), a random or an odd one.
    fn source(&mut self, v6: bool, dst: IpAddr) -> IpAddr {
        let d = &mut self.dice;
        let n = d.byte() & 0x3f;
        match (d.below(20), v6) {
            (0, _) => dst,
            (1, false) => IpAddr::V4(d.pick(&[
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::BROADCAST,
                Ipv4Addr::new(224, 0, 0, 1),
                Ipv4Addr::LOCALHOST,
            ])),
            (1, true) => IpAddr::V6(d.pick(&[
                Ipv6Addr::UNSPECIFIED,
                Ipv6Addr::LOCALHOST,
                Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            ])),
            (2..=4, false) => IpAddr::V4(Ipv4Addr::from(d.u32())),
            (2..=4, true) => IpAddr::V6(Ipv6Addr::from(u128::from(d.u64()) << 64 | 7)),
            (_, false) => IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
            (_, true) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(n))),
        }
    }

    /// MACs, tags and EtherType. Returns false when it wrote a complete
    /// non-IP frame (nothing more to add).
    fn ethernet(&mut self, out: &mut Vec<u8>, v6: bool, hostile: bool) -> bool {
        let d = &mut self.dice;
        let dst = match d.below(40) {
            0 => [0xff; 6],
            1 => [0x01, 0x00, 0x5e, 0, 0, 1],
            2 => {
                let r = d.u64().to_le_bytes();
                [r[0] & 0xfe, r[1], r[2], r[3], r[4], r[5]]
            }
            _ => self.ingress_mac,
        };
        out.extend_from_slice(&dst);
        out.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, 0x00, 0xc1 ^ (d.byte() & 0x0f)]);
        let tags = match d.below(100) {
            0..=71 => 0,
            72..=95 => 1,
            _ if hostile => 2,
            _ => 1,
        };
        for _ in 0..tags {
            let tpid: u16 = if d.chance(1, 3) { 0x88a8 } else { 0x8100 };
            let vid = d.pick_or(&[0u16, 1, 100, 200, 4094, 4095], |d| d.u16() & 0x0fff);
            let tci = if d.chance(1, 3) {
                (d.u16() & 0xf000) | vid
            } else {
                vid
            };
            out.extend_from_slice(&tpid.to_be_bytes());
            out.extend_from_slice(&tci.to_be_bytes());
        }
        let ip_type: u16 = if v6 { 0x86dd } else { 0x0800 };
        if hostile && d.chance(1, 25) {
            // Another EtherType: ARP, LLDP, an old QinQ TPID, MPLS, random,
            // or the other IP family's (its header then disagrees).
            let other_family = 0x86dd ^ 0x0800 ^ ip_type;
            let t = d.pick_or(&[0x0806, 0x88cc, 0x9100, 0x8847, other_family], Dice::u16);
            out.extend_from_slice(&t.to_be_bytes());
            if t == other_family {
                return true;
            }
            let n = d.range(0, 80);
            d.fill(out, n);
            return false;
        }
        out.extend_from_slice(&ip_type.to_be_bytes());
        true
    }

    fn ipv4(
        &mut self,
        out: &mut Vec<u8>,
        t: &Target,
        src: IpAddr,
        lay: &mut Layout,
        hostile: bool,
    ) {
        let d = &mut self.dice;
        let opt_words = match d.below(20) {
            0 => d.range(1, 10),
            1 if hostile => 10,
            _ => 0,
        };
        lay.ihl = 20 + opt_words * 4;
        let frag: u16 = match d.below(100) {
            0..=69 => 0x4000,
            70..=84 => 0,
            85..=89 => 0x2000,
            90..=93 => d.u16() & 0x1fff | 1,
            94..=96 => 0x2000 | (d.u16() & 0x1fff),
            97 => 0x6000,
            98 => 0x1fff,
            _ => 0x8000,
        };
        let start = out.len();
        out.push(0x40 | (5 + opt_words) as u8);
        out.push(pick_tos(d));
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&d.pick_or(&[0u16, 0xffff], Dice::u16).to_be_bytes());
        out.extend_from_slice(&frag.to_be_bytes());
        out.push(pick_ttl(d));
        out.push(t.proto);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&v4(src).octets());
        out.extend_from_slice(&v4(t.dst).octets());
        ipv4_options(d, out, opt_words * 4);
        debug_assert_eq!(out.len() - start, lay.ihl);
        lay.l4 = out.len();
        lay.proto = t.proto;
    }

    fn ipv6(
        &mut self,
        out: &mut Vec<u8>,
        t: &Target,
        src: IpAddr,
        lay: &mut Layout,
        hostile: bool,
    ) {
        let d = &mut self.dice;
        let tc = pick_tos(d);
        let fl = if d.chance(1, 3) {
            0
        } else {
            d.u32() & 0x000f_ffff
        };
        out.push(0x60 | tc >> 4);
        out.push(tc << 4 | (fl >> 16) as u8);
        out.push((fl >> 8) as u8);
        out.push(fl as u8);
        out.extend_from_slice(&[0, 0]);
        out.push(t.proto);
        out.push(pick_ttl(d));
        out.extend_from_slice(&v6(src).octets());
        out.extend_from_slice(&v6(t.dst).octets());
        let n_ext = match d.below(100) {
            0..=64 => 0,
            65..=79 => 1,
            80..=87 => 2,
            88..=93 => 3,
            94..=97 => 4,
            _ if hostile => 5,
            _ => 2,
        };
        let mut next_at = lay.l3 + 6;
        for _ in 0..n_ext {
            let kind = d.pick(&[0u8, 0, 60, 60, 43, 43, 44, 44, 51, 253]);
            out[next_at] = kind;
            if lay.first_ext.is_none() {
                lay.first_ext = Some(out.len());
            }
            next_at = out.len();
            ipv6_extension(d, out, kind);
        }
        out[next_at] = t.proto;
        lay.l4 = out.len();
        lay.proto = t.proto;
    }

    fn transport(
        &mut self,
        out: &mut Vec<u8>,
        t: &Target,
        src: IpAddr,
        lay: &mut Layout,
        hostile: bool,
    ) {
        let d = &mut self.dice;
        let sport = if d.chance(7, 10) {
            1024 + u16::from(d.byte() & 0x3f)
        } else {
            pick_port(d)
        };
        match t.proto {
            PROTO_TCP => {
                let opt_len = match d.below(10) {
                    0..=5 => 0,
                    6 => 4,
                    7 => 12,
                    8 => 20,
                    _ => 4 * d.range(1, 10),
                };
                out.extend_from_slice(&sport.to_be_bytes());
                out.extend_from_slice(&t.dport.to_be_bytes());
                out.extend_from_slice(&d.u32().to_be_bytes());
                out.extend_from_slice(&d.u32().to_be_bytes());
                out.push(((5 + opt_len / 4) as u8) << 4);
                out.push(d.pick_or(
                    &[0x02, 0x12, 0x10, 0x18, 0x04, 0x14, 0x11, 0x01, 0, 0xff],
                    Dice::byte,
                ));
                out.extend_from_slice(&d.u16().to_be_bytes());
                out.extend_from_slice(&[0, 0, 0, 0]);
                tcp_options(d, out, opt_len);
                lay.checksum_at = Some(16);
            }
            PROTO_UDP => {
                out.extend_from_slice(&sport.to_be_bytes());
                out.extend_from_slice(&t.dport.to_be_bytes());
                out.extend_from_slice(&[0, 0, 0, 0]);
                lay.checksum_at = Some(6);
            }
            PROTO_ICMP | PROTO_ICMPV6 => {
                let v6 = t.proto == PROTO_ICMPV6;
                let error = d.chance(1, 2);
                let (ty, code) = match (v6, error) {
                    (false, false) => (8, 0),
                    (false, true) => d.pick(&[(3, 0), (3, 1), (3, 3), (3, 4), (11, 0), (12, 0)]),
                    (true, false) => (128, 0),
                    (true, true) => d.pick(&[(1, 0), (1, 4), (2, 0), (3, 0), (4, 0)]),
                };
                out.extend_from_slice(&[ty, code, 0, 0]);
                out.extend_from_slice(&d.pick_or(&[0u32, 1280, 1400], Dice::u32).to_be_bytes());
                if error {
                    // The header of a packet the VIP supposedly sent.
                    embedded_header(d, out, v6 || lay.v6, t.dst, src, sport, t.dport);
                }
                lay.checksum_at = Some(2);
            }
            4 | 41 if !hostile || d.chance(1, 2) => {
                embedded_header(d, out, t.proto == 41, src, t.dst, sport, t.dport);
            }
            _ => {
                let n = d.range(0, 40);
                d.fill(out, n);
            }
        }
    }

    /// Payload bytes, sized mostly small, sometimes around each path MTU.
    fn payload(&mut self, out: &mut Vec<u8>, lay: &Layout) {
        let d = &mut self.dice;
        let so_far = out.len() - lay.l3;
        let n = match d.below(100) {
            0..=34 => d.range(0, 16),
            35..=59 => d.range(16, 200),
            60..=74 => d.range(200, 1400),
            75..=94 => {
                let outer_hdr = d.pick(&[20usize, 40]);
                let ip_len = d.pick(&MTUS) + d.range(0, 2) - 1 - outer_hdr;
                ip_len.saturating_sub(so_far)
            }
            _ => d.range(1400, 2900),
        };
        // Room for a tail after the packet.
        let room = (MAX_FRAME - 100).saturating_sub(out.len());
        d.fill(out, n.min(room));
    }
}
