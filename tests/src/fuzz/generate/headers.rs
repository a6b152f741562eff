//! Field values that favour boundaries, and the header pieces the generator
//! writes: IPv4 options, IPv6 extension headers, TCP options, the embedded
//! headers of ICMP errors, and the final length and checksum fixes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Layout, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::fuzz::{
    dice::Dice,
    wire::{finish, put16, sum},
};

pub(super) fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => a.to_ipv4_mapped().unwrap_or(Ipv4Addr::BROADCAST),
    }
}

pub(super) fn v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

pub(super) fn pick_port(d: &mut Dice) -> u16 {
    if d.chance(1, 5) {
        d.u16()
    } else {
        d.pick_or(&[0, 1, 53, 80, 443, 1023, 1024, 65535], Dice::u16)
    }
}

pub(super) fn pick_ttl(d: &mut Dice) -> u8 {
    d.pick_or(&[64, 64, 128, 0, 1, 2, 255], Dice::byte)
}

pub(super) fn pick_tos(d: &mut Dice) -> u8 {
    d.pick_or(&[0, 0, 0, 0x10, 0xb8, 0x01, 0x02, 0x03, 0xff], Dice::byte)
}

/// An address next to `a` (last byte +-1, or the other end of its /24).
pub(super) fn neighbour_addr(a: IpAddr, d: &mut Dice) -> IpAddr {
    let delta = d.pick(&[1u8, 255, 2, 128]);
    match a {
        IpAddr::V4(a) => {
            let mut o = a.octets();
            o[3] = o[3].wrapping_add(delta);
            IpAddr::V4(Ipv4Addr::from(o))
        }
        IpAddr::V6(a) => {
            let mut o = a.octets();
            o[15] = o[15].wrapping_add(delta);
            IpAddr::V6(Ipv6Addr::from(o))
        }
    }
}

pub(super) fn special_or_random_addr(d: &mut Dice) -> IpAddr {
    match d.below(6) {
        0 => IpAddr::V4(Ipv4Addr::from(d.u32())),
        1 => IpAddr::V6(Ipv6Addr::from(
            u128::from(d.u64()) << 64 | u128::from(d.u64()),
        )),
        2 => IpAddr::V4(d.pick(&[
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(224, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 255),
        ])),
        3 => IpAddr::V6(d.pick(&[
            Ipv6Addr::UNSPECIFIED,
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        ])),
        4 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, d.byte())),
        _ => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(d.byte()))),
    }
}

/// IPv4 options filling `len` bytes (a multiple of 4).
pub(super) fn ipv4_options(d: &mut Dice, out: &mut Vec<u8>, len: usize) {
    let end = out.len() + len;
    while out.len() < end {
        let room = end - out.len();
        match d.below(6) {
            0 => out.push(1), // NOP
            1 => {
                out.push(0); // EOL, then zeros
                out.resize(end, 0);
            }
            2 if room >= 4 => out.extend_from_slice(&[148, 4, 0, 0]), // router alert
            3 if room >= 7 => {
                // Record route with room for one address.
                out.extend_from_slice(&[7, 7, 4, 0, 0, 0, 0]);
            }
            4 if room >= 8 => {
                out.extend_from_slice(&[68, 8, 5, 0]); // timestamp
                out.extend_from_slice(&d.u32().to_be_bytes());
            }
            _ => out.push(d.byte()),
        }
    }
    out.truncate(end);
}

/// An IPv6 extension header of `kind` (its next-header byte is patched by
/// the caller).
pub(super) fn ipv6_extension(d: &mut Dice, out: &mut Vec<u8>, kind: u8) {
    match kind {
        44 => {
            let offset = if d.chance(1, 2) {
                0
            } else {
                d.u16() & 0x1fff | 1
            };
            let more = d.chance(1, 2);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(offset << 3 | u16::from(more)).to_be_bytes());
            out.extend_from_slice(&d.u32().to_be_bytes());
        }
        43 => {
            let addresses = d.range(0, 2);
            let segments_left = if d.chance(1, 2) {
                0
            } else {
                d.range(1, 3) as u8
            };
            out.extend_from_slice(&[
                0,
                (addresses * 2) as u8,
                d.pick(&[0u8, 2, 4]),
                segments_left,
            ]);
            out.extend_from_slice(&[0, 0, 0, 0]);
            for _ in 0..addresses {
                out.extend_from_slice(
                    &Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1).octets(),
                );
            }
        }
        51 => {
            // AH: length in 4-byte units minus 2; 24 bytes.
            out.extend_from_slice(&[0, 4, 0, 0]);
            d.fill(out, 20);
        }
        _ => {
            // Hop-by-hop, destination options, experimental: PadN options.
            let units = d.range(0, 2);
            out.extend_from_slice(&[0, units as u8]);
            let pad = 6 + units * 8;
            out.push(1);
            out.push((pad - 2) as u8);
            out.resize(out.len() + pad - 2, 0);
        }
    }
}

/// TCP options filling `len` bytes (a multiple of 4).
pub(super) fn tcp_options(d: &mut Dice, out: &mut Vec<u8>, len: usize) {
    let end = out.len() + len;
    if len >= 4 {
        out.extend_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
    }
    while out.len() < end {
        match d.below(4) {
            0 => out.push(1),
            1 if end - out.len() >= 3 => out.extend_from_slice(&[3, 3, 7]),
            2 if end - out.len() >= 10 => {
                out.extend_from_slice(&[8, 10]);
                d.fill(out, 8);
            }
            _ => out.push(d.byte()),
        }
    }
    out.truncate(end);
}

/// The first bytes of a packet from `src` to `dst` (an IPv4 or IPv6 header
/// and 8 bytes of TCP), as ICMP errors and IP-in-IP carry them.
pub(super) fn embedded_header(
    d: &mut Dice,
    out: &mut Vec<u8>,
    v6_inner: bool,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
) {
    let start = out.len();
    if v6_inner {
        out.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, PROTO_TCP, 64]);
        out.extend_from_slice(&v6(src).octets());
        out.extend_from_slice(&v6(dst).octets());
    } else {
        out.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, PROTO_TCP, 0, 0]);
        out.extend_from_slice(&v4(src).octets());
        out.extend_from_slice(&v4(dst).octets());
        let c = finish(sum(0, &out[start..start + 20]));
        put16(out, start + 10, c);
    }
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&dport.to_be_bytes());
    out.extend_from_slice(&d.u32().to_be_bytes());
}

/// Sets the IP and UDP length fields to what was written.
pub(super) fn fix_lengths(out: &mut [u8], lay: &Layout) {
    let ip_len = out.len() - lay.l3;
    if lay.v6 {
        put16(out, lay.l3 + 4, (ip_len - 40) as u16);
    } else {
        put16(out, lay.l3 + 2, ip_len as u16);
    }
    if lay.proto == PROTO_UDP {
        put16(out, lay.l4 + 4, (out.len() - lay.l4) as u16);
    }
}

/// The IPv4 header checksum and the transport checksum (pseudo-header for
/// TCP, UDP and ICMPv6).
pub(super) fn fix_checksums(out: &mut [u8], lay: &Layout) {
    if !lay.v6 {
        put16(out, lay.l3 + 10, 0);
        let c = finish(sum(0, &out[lay.l3..lay.l3 + lay.ihl]));
        put16(out, lay.l3 + 10, c);
    }
    let Some(at) = lay.checksum_at else {
        return;
    };
    let l4_len = out.len() - lay.l4;
    if at + 2 > l4_len {
        return;
    }
    put16(out, lay.l4 + at, 0);
    let mut acc = 0;
    if lay.proto != PROTO_ICMP {
        let (src, dst) = if lay.v6 {
            (lay.l3 + 8..lay.l3 + 24, lay.l3 + 24..lay.l3 + 40)
        } else {
            (lay.l3 + 12..lay.l3 + 16, lay.l3 + 16..lay.l3 + 20)
        };
        acc = sum(acc, &out[src]);
        acc = sum(acc, &out[dst]);
        acc = acc.wrapping_add(u32::from(lay.proto) + l4_len as u32);
    }
    acc = sum(acc, &out[lay.l4..]);
    let mut c = finish(acc);
    if lay.proto == PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    put16(out, lay.l4 + at, c);
}
