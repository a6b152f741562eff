//! Real packet bytes for the packet tests, built with etherparse (so the test
//! side never shares code with the data plane), plus the few variants etherparse
//! has no builder for (IPv4 options, IPv6 extension headers, fragments), made by
//! editing the built bytes and fixing the lengths and checksums.

use std::net::IpAddr;

use etherparse::{Ipv4HeaderSlice, PacketBuilder, TcpHeader, VlanId};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xc1];

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp { flags: u8 },
    Udp,
}

/// Everything that varies between test frames; `Frame::tcp`/`udp` fill sane
/// defaults, tests change fields.
#[derive(Clone, Debug)]
pub struct Frame {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub vlan: Option<u16>,
    /// 802.1ad (0x88a8) instead of 802.1Q for the tag.
    pub vlan_qinq_tpid: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub l4: L4,
    pub ttl: u8,
    /// DSCP (6 bits) << 2 | ECN (2 bits).
    pub tos: u8,
    pub payload: Vec<u8>,
    /// Raw IPv4 options (padded to a multiple of 4 by `build`).
    pub ipv4_options: Vec<u8>,
    /// IPv6 extension headers to insert before the transport header:
    /// (type, total length in bytes, a multiple of 8).
    pub ipv6_ext: Vec<(u8, usize)>,
    /// IPv4: set MF / fragment offset (in 8-byte units). IPv6: add a fragment
    /// header with this offset and M flag.
    pub fragment: Option<(bool, u16)>,
}

impl Frame {
    pub fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, dst_mac: [u8; 6]) -> Self {
        Self {
            src_mac: CLIENT_MAC,
            dst_mac,
            vlan: None,
            vlan_qinq_tpid: false,
            src,
            dst,
            sport,
            dport,
            l4: L4::Tcp { flags: TCP_SYN },
            ttl: 64,
            tos: 0,
            payload: Vec::new(),
            ipv4_options: Vec::new(),
            ipv6_ext: Vec::new(),
            fragment: None,
        }
    }

    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, dst_mac: [u8; 6]) -> Self {
        Self {
            l4: L4::Udp,
            payload: b"xlb udp payload".to_vec(),
            ..Self::tcp(src, sport, dst, dport, dst_mac)
        }
    }

    /// Offset of the IP header in the built frame.
    pub fn l3_offset(&self) -> usize {
        if self.vlan.is_some() {
            18
        } else {
            14
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let eth = PacketBuilder::ethernet2(self.src_mac, self.dst_mac);
        macro_rules! finish {
            ($ip:expr) => {{
                match self.l4 {
                    L4::Tcp { flags } => {
                        let mut tcp = TcpHeader::new(self.sport, self.dport, 1000, 64240);
                        tcp.fin = flags & TCP_FIN != 0;
                        tcp.syn = flags & TCP_SYN != 0;
                        tcp.rst = flags & TCP_RST != 0;
                        tcp.psh = flags & TCP_PSH != 0;
                        tcp.ack = flags & TCP_ACK != 0;
                        if tcp.ack {
                            tcp.acknowledgment_number = 4242;
                        }
                        $ip.tcp_header(tcp).write(&mut out, &self.payload)
                    }
                    L4::Udp => $ip
                        .udp(self.sport, self.dport)
                        .write(&mut out, &self.payload),
                }
                .unwrap_or_else(|e| panic!("building {self:?}: {e}"));
            }};
        }
        match (self.src, self.dst, self.vlan) {
            (IpAddr::V4(s), IpAddr::V4(d), None) => {
                finish!(eth.ipv4(s.octets(), d.octets(), self.ttl))
            }
            (IpAddr::V4(s), IpAddr::V4(d), Some(v)) => {
                finish!(eth
                    .single_vlan(vlan_id(v))
                    .ipv4(s.octets(), d.octets(), self.ttl))
            }
            (IpAddr::V6(s), IpAddr::V6(d), None) => {
                finish!(eth.ipv6(s.octets(), d.octets(), self.ttl))
            }
            (IpAddr::V6(s), IpAddr::V6(d), Some(v)) => {
                finish!(eth
                    .single_vlan(vlan_id(v))
                    .ipv6(s.octets(), d.octets(), self.ttl))
            }
            _ => panic!("mixed address families in {self:?}"),
        }
        if self.vlan.is_some() && self.vlan_qinq_tpid {
            out[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
        }
        let l3 = self.l3_offset();
        match self.src {
            IpAddr::V4(_) => self.finish_ipv4(&mut out, l3),
            IpAddr::V6(_) => self.finish_ipv6(&mut out, l3),
        }
        out
    }

    fn finish_ipv4(&self, out: &mut Vec<u8>, l3: usize) {
        out[l3 + 1] = self.tos;
        if !self.ipv4_options.is_empty() {
            let mut opts = self.ipv4_options.clone();
            while !opts.len().is_multiple_of(4) {
                opts.push(0); // end of option list
            }
            assert!(opts.len() <= 40, "IPv4 options longer than 40 bytes");
            let ihl = out[l3] & 0x0f;
            let insert_at = l3 + usize::from(ihl) * 4;
            out.splice(insert_at..insert_at, opts.iter().copied());
            out[l3] = 0x40 | (ihl + (opts.len() / 4) as u8);
            let tot = u16::from_be_bytes([out[l3 + 2], out[l3 + 3]]) + opts.len() as u16;
            out[l3 + 2..l3 + 4].copy_from_slice(&tot.to_be_bytes());
        }
        if let Some((more, offset)) = self.fragment {
            let v = (u16::from(more) << 13) | (offset & 0x1fff);
            out[l3 + 6..l3 + 8].copy_from_slice(&v.to_be_bytes());
        }
        fix_ipv4_checksum(out, l3);
    }

    fn finish_ipv6(&self, out: &mut Vec<u8>, l3: usize) {
        // Traffic class spans bytes 0 and 1 of the header.
        out[l3] = 0x60 | (self.tos >> 4);
        out[l3 + 1] = (self.tos << 4) | (out[l3 + 1] & 0x0f);
        let mut exts: Vec<(u8, usize)> = self.ipv6_ext.clone();
        if let Some((more, offset)) = self.fragment {
            exts.push((44, 8));
            let _ = (more, offset);
        }
        if exts.is_empty() {
            return;
        }
        let transport = out[l3 + 6];
        let mut bytes = Vec::new();
        for (i, (kind, len)) in exts.iter().enumerate() {
            assert!(len % 8 == 0 && *len >= 8, "extension header length {len}");
            let next = exts.get(i + 1).map(|e| e.0).unwrap_or(transport);
            let mut h = vec![0u8; *len];
            h[0] = next;
            if *kind == 44 {
                let (more, offset) = self.fragment.unwrap_or((false, 0));
                let v = (offset << 3) | u16::from(more);
                h[2..4].copy_from_slice(&v.to_be_bytes());
                h[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
            } else {
                h[1] = (len / 8 - 1) as u8;
                // Pad with a PadN option covering the rest of the header.
                h[2] = 1;
                h[3] = (len - 4) as u8;
            }
            bytes.extend_from_slice(&h);
        }
        out[l3 + 6] = exts[0].0;
        let payload = u16::from_be_bytes([out[l3 + 4], out[l3 + 5]]) + bytes.len() as u16;
        out[l3 + 4..l3 + 6].copy_from_slice(&payload.to_be_bytes());
        out.splice(l3 + 40..l3 + 40, bytes);
    }
}

fn vlan_id(v: u16) -> VlanId {
    VlanId::try_new(v).unwrap_or_else(|e| panic!("vlan id {v}: {e}"))
}

/// Recomputes the IPv4 header checksum at `l3` with etherparse.
pub fn fix_ipv4_checksum(out: &mut [u8], l3: usize) {
    out[l3 + 10] = 0;
    out[l3 + 11] = 0;
    let h = Ipv4HeaderSlice::from_slice(&out[l3..])
        .unwrap_or_else(|e| panic!("re-parsing built IPv4 header: {e}"))
        .to_header();
    let c = h.calc_header_checksum();
    out[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// An ARP request frame (never IP).
pub fn arp_request(src_mac: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// A frame with an EtherType that is neither IP nor ARP (LLDP).
pub fn lldp_frame(src_mac: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x88ccu16.to_be_bytes());
    f.extend_from_slice(&[0x02, 0x07, 0x04, 1, 2, 3, 4, 5, 6, 0, 0]);
    f.resize(60, 0);
    f
}

/// The connection-table key of `fr` as the data plane builds it.
pub fn key_of(fr: &Frame) -> lb_common::FlowKey {
    let proto = match fr.l4 {
        L4::Tcp { .. } => lb_common::PROTO_TCP,
        L4::Udp => lb_common::PROTO_UDP,
    };
    lb_common::FlowKey::new(fr.src, fr.sport, fr.dst, fr.dport, proto)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `fr` as a TCP segment with `flags`.
pub fn with_flags(fr: &Frame, flags: u8) -> Frame {
    Frame {
        l4: L4::Tcp { flags },
        ..fr.clone()
    }
}
