//! What makes a generated frame hostile: a length field that lies, Ethernet
//! padding and trailing bytes, truncation at a header boundary or anywhere.

use super::{Dice, Generator, Layout, MAX_FRAME, MIN_FRAME, PROTO_TCP, PROTO_UDP};
use crate::fuzz::wire::{finish, put16, sum};

impl Generator {
    /// One length field made to disagree with the packet.
    pub(super) fn lie(&mut self, out: &mut [u8], lay: &Layout) {
        let d = &mut self.dice;
        let ip_len = out.len() - lay.l3;
        let l4_len = out.len() - lay.l4;
        if lay.v6 {
            let real = (ip_len - 40) as u16;
            match d.below(4) {
                0 | 1 => {
                    let far = real.wrapping_add(d.range(2, 64) as u16);
                    let v = d.pick_or(
                        &[
                            0,
                            real.wrapping_sub(1),
                            real.wrapping_add(1),
                            far,
                            real.saturating_sub(8),
                            0xffff,
                        ],
                        Dice::u16,
                    );
                    put16(out, lay.l3 + 4, v);
                }
                2 if lay.first_ext.is_some() => {
                    let at = lay.first_ext.unwrap_or(lay.l4) + 1;
                    out[at] = d.pick_or(&[0, 1, 2, 0xff], Dice::byte);
                }
                _ => self.lie_transport(out, lay, l4_len),
            }
        } else {
            let real = ip_len as u16;
            match d.below(5) {
                0 | 1 => {
                    let ihl = lay.ihl as u16;
                    let far = real + d.range(2, 64) as u16;
                    let v = d.pick_or(
                        &[0, 1, 19, ihl - 1, ihl, real - 1, real + 1, far, 0xffff],
                        Dice::u16,
                    );
                    put16(out, lay.l3 + 2, v);
                }
                2 => out[lay.l3] = 0x40 | d.byte() & 0x0f,
                3 => out[lay.l3] = d.pick_or(&[0x45, 0x65, 0x05, 0xf5], Dice::byte),
                _ => self.lie_transport(out, lay, l4_len),
            }
            if self.dice.chance(1, 2) {
                // A correct checksum over the lie: only the lie is wrong.
                let ihl = usize::from(out[lay.l3] & 0x0f) * 4;
                if ihl >= 20 && lay.l3 + ihl <= out.len() {
                    put16(out, lay.l3 + 10, 0);
                    let c = finish(sum(0, &out[lay.l3..lay.l3 + ihl]));
                    put16(out, lay.l3 + 10, c);
                }
            }
        }
    }

    fn lie_transport(&mut self, out: &mut [u8], lay: &Layout, l4_len: usize) {
        let d = &mut self.dice;
        match lay.proto {
            PROTO_UDP if l4_len >= 8 => {
                let real = l4_len as u16;
                let v = d.pick(&[0, 7, 8, real.wrapping_sub(1), real.wrapping_add(1), 0xffff]);
                put16(out, lay.l4 + 4, v);
            }
            PROTO_TCP if l4_len >= 20 => {
                out[lay.l4 + 12] = (d.byte() & 0xf0) | (out[lay.l4 + 12] & 0x0f);
            }
            _ => {}
        }
    }

    /// Ethernet padding (zeros up to 60 bytes) or trailing bytes after the
    /// IP packet.
    pub(super) fn tail(&mut self, out: &mut Vec<u8>, hostile: bool) {
        let d = &mut self.dice;
        if out.len() < 60 && d.chance(1, 2) {
            out.resize(60, 0);
        }
        if hostile {
            match d.below(40) {
                0..=5 => {
                    let n = d.range(1, 64);
                    d.fill(out, n);
                }
                6 if out.len() < 1514 => {
                    let n = 1514 - out.len();
                    d.fill(out, n);
                }
                _ => {}
            }
        }
        out.truncate(MAX_FRAME);
    }

    /// Cuts the frame at a header boundary (+-1) or anywhere.
    pub(super) fn truncate(&mut self, out: &mut Vec<u8>, lay: &Layout) {
        let d = &mut self.dice;
        let len = out.len();
        if len <= MIN_FRAME {
            return;
        }
        let at = if d.chance(1, 2) {
            d.range(MIN_FRAME, len - 1)
        } else {
            let points = [
                14,
                15,
                17,
                18,
                lay.l3,
                lay.l3 + 1,
                lay.l3 + 9,
                lay.l3 + 19,
                lay.l3 + 20,
                lay.l3 + 39,
                lay.l3 + 40,
                lay.l4.saturating_sub(1),
                lay.l4,
                lay.l4 + 1,
                lay.l4 + 4,
                lay.l4 + 7,
                lay.l4 + 8,
                lay.l4 + 13,
                lay.l4 + 19,
                lay.l4 + 20,
                len - 1,
            ];
            d.pick(&points).clamp(MIN_FRAME, len - 1)
        };
        out.truncate(at);
    }
}
