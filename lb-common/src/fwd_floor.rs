//! Names of the end-to-end benchmark's XDP forwarding floor in the auxiliary
//! object (lb-ebpf's `aux_programs.rs`): `xlb_fwd_floor` rewrites the MACs
//! from [`MACS_MAP`] and redirects through [`PORT_MAP`], nothing else (what
//! any XDP forwarder must at least do in that topology). The benchmark fills
//! both maps.

/// Rewrites the Ethernet addresses and redirects to the egress port.
pub const PROGRAM: &str = "xlb_fwd_floor";
/// Array, one slot: destination MAC then source MAC (12 bytes).
pub const MACS_MAP: &str = "XLB_FWD_MACS";
/// Devmap, one slot: the egress interface.
pub const PORT_MAP: &str = "XLB_FWD_PORT";

/// [`MACS_MAP`]'s value for a next hop: `dst` then `src`, as the two
/// native-endian words the program stores over the frame's first 12 bytes.
pub fn macs_words(dst: [u8; 6], src: [u8; 6]) -> [u64; 2] {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&src);
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&b[..8]);
    hi.copy_from_slice(&b[8..]);
    [u64::from_ne_bytes(lo), u64::from_ne_bytes(hi)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_hold_the_macs_in_frame_order() {
        let w = macs_words([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&w[0].to_ne_bytes());
        bytes[8..].copy_from_slice(&w[1].to_ne_bytes());
        assert_eq!(bytes, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0, 0]);
    }
}
