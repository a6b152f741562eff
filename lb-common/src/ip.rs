//! Addresses as keys and values hold them: 16 bytes (an IPv4 address in the
//! first 4, the rest zero) plus a family tag. Converting from and to
//! `core::net` types happens here and nowhere else.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Address family tags used in keys and values (not the kernel's AF_*
/// numbers: these are only ever compared with each other).
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Pads an IPv4 address into the 16-byte form.
#[inline(always)]
pub const fn v4_addr16(v4: [u8; 4]) -> [u8; 16] {
    [
        v4[0], v4[1], v4[2], v4[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]
}

/// The 16-byte form and family tag of `addr`.
pub const fn to_addr16(addr: IpAddr) -> ([u8; 16], u8) {
    match addr {
        IpAddr::V4(a) => (v4_addr16(a.octets()), FAMILY_V4),
        IpAddr::V6(a) => (a.octets(), FAMILY_V6),
    }
}

/// The address a 16-byte form and family tag stand for.
pub fn from_addr16(addr: &[u8; 16], family: u8) -> IpAddr {
    if family == FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*addr))
    }
}

/// `a` and `b` are of different address families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilyMismatch {
    pub a: IpAddr,
    pub b: IpAddr,
}

impl core::fmt::Display for FamilyMismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} and {} are of different address families",
            self.a, self.b
        )
    }
}

impl core::error::Error for FamilyMismatch {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for a in [
            IpAddr::from([192, 0, 2, 7]),
            IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
            IpAddr::from([0, 0, 0, 0]),
        ] {
            let (b, family) = to_addr16(a);
            assert_eq!(from_addr16(&b, family), a);
        }
    }

    #[test]
    fn v4_lives_in_the_first_four_bytes() {
        let (b, family) = to_addr16(IpAddr::from([10, 1, 2, 3]));
        assert_eq!(family, FAMILY_V4);
        assert_eq!(b, [10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
