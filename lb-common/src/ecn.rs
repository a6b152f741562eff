//! Explicit Congestion Notification at tunnel decapsulation (RFC 6040,
//! section 4.2): a router between balancer and backend may mark the outer
//! header Congestion Experienced; the mark must reach the inner packet, or the
//! endpoints never learn of the congestion.
//!
//! The values are the two ECN bits (the low bits of the IPv4 TOS byte or of
//! the IPv6 traffic class).

pub const ECN_MASK: u8 = 0b11;
pub const NOT_ECT: u8 = 0b00;
pub const ECT_1: u8 = 0b01;
pub const ECT_0: u8 = 0b10;
pub const CE: u8 = 0b11;

/// What decapsulation does to the inner packet's ECN field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecapEcn {
    /// The inner header stays as it is.
    Keep,
    /// The inner header is marked CE (it was ECN-capable).
    MarkCe,
    /// Outer CE on a packet whose transport is not ECN-capable: the signal
    /// cannot be passed on, so the packet is dropped, as a congested router
    /// would have dropped it.
    Drop,
}

/// The RFC 6040 rule for an outer and an inner ECN field (only the low two
/// bits of each are read). Like the kernel's own tunnels
/// (`INET_ECN_decapsulate`), only CE is propagated: an outer ECT(1) over an
/// inner ECT(0), which the RFC's table turns into ECT(1), is left as it is;
/// xlb's balancer copies the inner field into the outer header, so only a
/// router's CE mark can make the two differ.
#[inline(always)]
pub const fn decap_ecn(outer: u8, inner: u8) -> DecapEcn {
    if outer & ECN_MASK != CE {
        return DecapEcn::Keep;
    }
    match inner & ECN_MASK {
        NOT_ECT => DecapEcn::Drop,
        CE => DecapEcn::Keep,
        _ => DecapEcn::MarkCe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6040 figure 4 (rows: inner, columns: outer Not-ECT, ECT(0),
    /// ECT(1), CE), restricted to CE propagation as documented above.
    #[test]
    fn follows_the_rfc_6040_table() {
        use DecapEcn::{Drop, Keep, MarkCe};
        let outers = [NOT_ECT, ECT_0, ECT_1, CE];
        let table = [
            (NOT_ECT, [Keep, Keep, Keep, Drop]),
            (ECT_0, [Keep, Keep, Keep, MarkCe]),
            (ECT_1, [Keep, Keep, Keep, MarkCe]),
            (CE, [Keep, Keep, Keep, Keep]),
        ];
        for (inner, row) in table {
            for (outer, want) in outers.into_iter().zip(row) {
                assert_eq!(decap_ecn(outer, inner), want, "outer {outer} inner {inner}");
            }
        }
    }

    #[test]
    fn only_the_ecn_bits_are_read() {
        // DSCP bits above the ECN field change nothing.
        assert_eq!(decap_ecn(0xb8 | CE, 0xb8 | ECT_0), DecapEcn::MarkCe);
        assert_eq!(decap_ecn(0xfc | NOT_ECT, 0x04 | ECT_0), DecapEcn::Keep);
    }
}
