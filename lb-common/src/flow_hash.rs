//! The 32-bit flow hash. The XDP program and the daemon (`xlb explain`, tests)
//! run this same code, so userspace can always say which Maglev slot a flow uses.
//!
//! MurmurHash3 (x86, 32-bit) over little-endian 32-bit words of the key: a few ALU
//! operations per word, no tables, no loops the verifier has to bound beyond the
//! fixed word count, and well distributed even for keys that differ in one port
//! bit. IPv4 keys hash 4 words, IPv6 keys 10, so IPv4 pays only for what it uses.
//! The seed is the deployment's `global.hash_seed` (read by the data plane
//! from `XLB_CONFIG`): every balancer of one fleet must use the same seed, so
//! that all pick the same backend for the same flow (ECMP in front of several
//! balancers relies on it), while an outsider who does not know the seed
//! cannot compute which backend a crafted flow lands on.

use crate::{ip::FAMILY_V4, maps::FlowKey};

/// The seed of a config without `global.hash_seed` (and of tests): public,
/// so a deployment that keeps it lets anyone aim a flood at one backend.
pub const DEFAULT_HASH_SEED: u32 = 0x786c_6221; // "xlb!"
const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline(always)]
const fn mix(h: u32, k: u32) -> u32 {
    let k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline(always)]
const fn finish(h: u32, len_bytes: u32) -> u32 {
    let mut h = h ^ len_bytes;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[inline(always)]
const fn word(b: &[u8; 16], i: usize) -> u32 {
    u32::from_le_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]])
}

#[inline(always)]
const fn ports_word(k: &FlowKey) -> u32 {
    u32::from_le_bytes([k.sport[0], k.sport[1], k.dport[0], k.dport[1]])
}

#[inline(always)]
const fn proto_word(k: &FlowKey) -> u32 {
    k.proto as u32 | (k.family as u32) << 8
}

/// Hash of the full 5-tuple (the default VIP hashing).
#[inline(always)]
pub const fn flow_hash(seed: u32, k: &FlowKey) -> u32 {
    let mut h = seed;
    if k.family == FAMILY_V4 {
        h = mix(h, word(&k.src, 0));
        h = mix(h, word(&k.dst, 0));
        h = mix(h, ports_word(k));
        h = mix(h, proto_word(k));
        finish(h, 16)
    } else {
        h = mix(h, word(&k.src, 0));
        h = mix(h, word(&k.src, 1));
        h = mix(h, word(&k.src, 2));
        h = mix(h, word(&k.src, 3));
        h = mix(h, word(&k.dst, 0));
        h = mix(h, word(&k.dst, 1));
        h = mix(h, word(&k.dst, 2));
        h = mix(h, word(&k.dst, 3));
        h = mix(h, ports_word(k));
        h = mix(h, proto_word(k));
        finish(h, 40)
    }
}

/// Hash of the source address only (VIPs with client affinity): every
/// connection from one client lands on the same backend while the table holds.
#[inline(always)]
pub const fn source_hash(seed: u32, k: &FlowKey) -> u32 {
    let mut h = seed;
    if k.family == FAMILY_V4 {
        h = mix(h, word(&k.src, 0));
        finish(h, 4)
    } else {
        h = mix(h, word(&k.src, 0));
        h = mix(h, word(&k.src, 1));
        h = mix(h, word(&k.src, 2));
        h = mix(h, word(&k.src, 3));
        finish(h, 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::{PROTO_TCP, PROTO_UDP};

    fn v4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, proto: u8) -> FlowKey {
        FlowKey::new(
            core::net::IpAddr::from(src),
            sport,
            core::net::IpAddr::from(dst),
            dport,
            proto,
        )
        .expect("same family")
    }

    /// Pins the function itself: a change here silently moves every flow of every
    /// deployed balancer on upgrade, so it must be deliberate. The values were
    /// computed with an independent MurmurHash3_x86_32 over the same bytes
    /// (src, dst, sport, dport, proto, family, 0, 0), seed 0x786c6221.
    #[test]
    fn known_values() {
        let k = v4([10, 0, 0, 1], 40000, [10, 100, 0, 1], 80, PROTO_TCP);
        assert_eq!(flow_hash(DEFAULT_HASH_SEED, &k), 0x4f32_401f);
        assert_eq!(source_hash(DEFAULT_HASH_SEED, &k), 0x00fb_7c52);
    }

    /// Another seed: the same function, the seed only replaces the initial
    /// state (values from the same independent MurmurHash3_x86_32, seeds
    /// 0 and 0xdeadbeef).
    #[test]
    fn known_values_other_seeds() {
        let k = v4([10, 0, 0, 1], 40000, [10, 100, 0, 1], 80, PROTO_TCP);
        assert_eq!(flow_hash(0, &k), 0x2a62_f6e1);
        assert_eq!(source_hash(0, &k), 0x5cd6_345a);
        assert_eq!(flow_hash(0xdead_beef, &k), 0x3458_6aba);
        assert_eq!(source_hash(0xdead_beef, &k), 0x75eb_4d3c);
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = v4([10, 0, 0, 1], 40000, [10, 100, 0, 1], 80, PROTO_TCP);
        let h = flow_hash(DEFAULT_HASH_SEED, &base);
        let variants = [
            v4([10, 0, 0, 2], 40000, [10, 100, 0, 1], 80, PROTO_TCP),
            v4([10, 0, 0, 1], 40001, [10, 100, 0, 1], 80, PROTO_TCP),
            v4([10, 0, 0, 1], 40000, [10, 100, 0, 2], 80, PROTO_TCP),
            v4([10, 0, 0, 1], 40000, [10, 100, 0, 1], 81, PROTO_TCP),
            v4([10, 0, 0, 1], 40000, [10, 100, 0, 1], 80, PROTO_UDP),
        ];
        for v in variants {
            assert_ne!(flow_hash(DEFAULT_HASH_SEED, &v), h, "{v:?}");
        }
    }

    #[test]
    fn swapped_ports_differ() {
        let a = v4([10, 0, 0, 1], 1000, [10, 0, 0, 2], 2000, PROTO_TCP);
        let b = v4([10, 0, 0, 1], 2000, [10, 0, 0, 2], 1000, PROTO_TCP);
        assert_ne!(
            flow_hash(DEFAULT_HASH_SEED, &a),
            flow_hash(DEFAULT_HASH_SEED, &b)
        );
    }

    #[test]
    fn source_hash_ignores_everything_but_the_source() {
        let a = v4([192, 0, 2, 7], 1000, [10, 0, 0, 2], 80, PROTO_TCP);
        let b = v4([192, 0, 2, 7], 5555, [10, 0, 0, 9], 443, PROTO_UDP);
        assert_eq!(
            source_hash(DEFAULT_HASH_SEED, &a),
            source_hash(DEFAULT_HASH_SEED, &b)
        );
        let c = v4([192, 0, 2, 8], 1000, [10, 0, 0, 2], 80, PROTO_TCP);
        assert_ne!(
            source_hash(DEFAULT_HASH_SEED, &a),
            source_hash(DEFAULT_HASH_SEED, &c)
        );
    }

    #[test]
    fn v6_uses_all_address_words() {
        let src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let mut k = FlowKey::new(
            core::net::IpAddr::from(src),
            1234,
            core::net::IpAddr::from(dst),
            80,
            PROTO_TCP,
        )
        .expect("same family");
        let h = flow_hash(DEFAULT_HASH_SEED, &k);
        for i in 0..16 {
            k.src[i] ^= 0x80;
            assert_ne!(flow_hash(DEFAULT_HASH_SEED, &k), h, "src byte {i} ignored");
            k.src[i] ^= 0x80;
            k.dst[i] ^= 0x80;
            assert_ne!(flow_hash(DEFAULT_HASH_SEED, &k), h, "dst byte {i} ignored");
            k.dst[i] ^= 0x80;
        }
    }

    /// Low bits matter most (slot = hash % prime): sequential source ports must
    /// spread evenly over a small prime table.
    #[test]
    fn sequential_ports_spread_evenly() {
        const M: u32 = 251;
        let mut buckets = [0u32; M as usize];
        let n = 251 * 400;
        for p in 0..n {
            let k = v4(
                [10, 0, 0, 1],
                (p % 65536) as u16,
                [10, 100, (p / 65536) as u8, 1],
                80,
                PROTO_TCP,
            );
            buckets[(flow_hash(DEFAULT_HASH_SEED, &k) % M) as usize] += 1;
        }
        let expected = n / M;
        for (i, &b) in buckets.iter().enumerate() {
            assert!(
                b.abs_diff(expected) < expected / 4,
                "bucket {i}: {b} vs {expected}"
            );
        }
    }
}
