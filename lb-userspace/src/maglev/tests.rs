//! Properties the balancer relies on: every slot filled, counts proportional
//! to weights, little movement when the backend set changes, determinism.

use std::{collections::HashMap, net::IpAddr};

use super::*;

const M: u32 = DEFAULT_TABLE_SIZE;

/// Xorshift64: reproducible random weights without a rand crate (also used
/// by the property tests in maglev.rs).
pub(super) struct Rng(pub(super) u64);
impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A weight in 1..=65535.
    pub(super) fn weight(&mut self) -> u16 {
        1 + (self.next() % 65535) as u16
    }
}

fn addr(i: usize) -> IpAddr {
    if i % 3 == 2 {
        IpAddr::from([
            0xfd,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            (i >> 8) as u8,
            i as u8,
        ])
    } else {
        IpAddr::from([10, 1, (i >> 8) as u8, i as u8])
    }
}

fn backends(n: usize, weight: impl Fn(usize) -> u16) -> Vec<MaglevBackend> {
    (0..n)
        .map(|i| MaglevBackend::new(addr(i), weight(i)))
        .collect()
}

fn build(b: &[MaglevBackend], m: u32) -> Vec<u32> {
    build_table(b, m).unwrap_or_else(|e| panic!("{e}"))
}

/// The table as identities, so tables of different inputs compare by backend.
fn identities(b: &[MaglevBackend], t: &[u32]) -> Vec<BackendIdentity> {
    t.iter().map(|&i| b[i as usize].identity).collect()
}

fn counts(t: &[u32]) -> HashMap<u32, u64> {
    let mut c = HashMap::new();
    for &i in t {
        *c.entry(i).or_insert(0) += 1;
    }
    c
}

/// Each backend within max(2 entries, 0.5% of its expected count) of
/// M * weight / total (our reading of the tolerance: relative to the backend's
/// own share).
fn assert_proportional(b: &[MaglevBackend], t: &[u32], m: u32) {
    assert!(
        t.iter().all(|&i| i != NO_ENTRY),
        "every slot must be filled"
    );
    let total: f64 = b.iter().map(|x| f64::from(x.weight)).sum();
    let c = counts(t);
    for (i, x) in b.iter().enumerate() {
        let expected = f64::from(m) * f64::from(x.weight) / total;
        let got = c.get(&(i as u32)).copied().unwrap_or(0) as f64;
        let tolerance = (expected * 0.005).max(2.0);
        assert!(
            (got - expected).abs() <= tolerance,
            "backend {i} (weight {}): {got} slots, expected {expected:.1} +- {tolerance:.1}",
            x.weight
        );
        if x.weight == 0 {
            assert_eq!(got, 0.0, "a drained backend must have no slot");
        }
    }
}

#[test]
fn equal_weights_fill_every_slot_within_one_entry() {
    for n in [3usize, 7, 10, 50, 100, 333, 1000] {
        let b = backends(n, |_| 100);
        let t = build(&b, M);
        assert_proportional(&b, &t, M);
        let c = counts(&t);
        let (lo, hi) = (
            c.values().min().copied().unwrap_or(0),
            c.values().max().copied().unwrap_or(0),
        );
        assert!(hi - lo <= 1, "n={n}: counts range {lo}..{hi}");
    }
}

#[test]
fn random_weights_are_proportional() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for n in [3usize, 7, 10, 50, 100, 333, 1000] {
        let w: Vec<u16> = (0..n).map(|_| 1 + (rng.next() % 65535) as u16).collect();
        let b = backends(n, |i| w[i]);
        assert_proportional(&b, &build(&b, M), M);
    }
}

#[test]
fn drained_backends_get_no_slots() {
    let b = backends(10, |i| if i % 3 == 0 { 0 } else { 10 });
    let t = build(&b, 251);
    assert_proportional(&b, &t, 251);
}

#[test]
fn no_weighted_backend_gives_an_empty_table() {
    assert_eq!(build(&backends(3, |_| 0), 7), vec![NO_ENTRY; 7]);
    assert_eq!(build(&[], 7), vec![NO_ENTRY; 7]);
}

/// Slots whose backend changed, not counting the ones `removed` owned before.
fn moved_beyond(
    before: &[BackendIdentity],
    after: &[BackendIdentity],
    removed: Option<BackendIdentity>,
) -> usize {
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| b != a && Some(**b) != removed)
        .count()
}

#[test]
fn removing_one_backend_moves_at_most_one_percent_beyond_its_own_slots() {
    let limit = (f64::from(M) * 0.01) as usize;
    for n in [10usize, 100, 1000] {
        let all = backends(n, |_| 100);
        let before = identities(&all, &build(&all, M));
        let mut worst = 0;
        for victim in [0, n / 2, n - 1] {
            let mut rest = all.clone();
            let gone = rest.remove(victim);
            let after = identities(&rest, &build(&rest, M));
            let moved = moved_beyond(&before, &after, Some(gone.identity));
            worst = worst.max(moved);
            assert!(
                moved <= limit,
                "n={n}, removing {victim}: {moved} extra slots moved (limit {limit})"
            );
            // Adding it back restores the identical table.
            let mut back = rest.clone();
            back.insert(victim, gone);
            assert_eq!(
                identities(&back, &build(&back, M)),
                before,
                "n={n}: re-adding {victim}"
            );
        }
        println!(
            "remove one of {n}: worst extra movement {worst} slots ({:.3}%)",
            worst as f64 * 100.0 / f64::from(M)
        );
    }
}

#[test]
fn removing_one_weighted_backend_is_also_gentle() {
    let mut rng = Rng(42);
    let n = 100;
    let w: Vec<u16> = (0..n).map(|_| 1 + (rng.next() % 1000) as u16).collect();
    let all = backends(n, |i| w[i]);
    let before = identities(&all, &build(&all, M));
    let mut rest = all.clone();
    let gone = rest.remove(37);
    let after = identities(&rest, &build(&rest, M));
    let moved = moved_beyond(&before, &after, Some(gone.identity));
    assert!(
        moved <= (f64::from(M) * 0.01) as usize,
        "{moved} extra slots moved"
    );
}

#[test]
fn a_weight_change_moves_about_the_weight_delta() {
    // Ten equal backends; one drops to half weight: its share goes from 10% to
    // 5.26%, so at least 4.7% of slots must move; allow a few % of churn more.
    let all = backends(10, |_| 100);
    let before = identities(&all, &build(&all, M));
    let halved = backends(10, |i| if i == 4 { 50 } else { 100 });
    let after = identities(&halved, &build(&halved, M));
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    let needed = f64::from(M) * (0.1 - 50.0 / 950.0);
    println!("weight change: {moved} slots moved, {needed:.0} needed");
    assert!(moved as f64 >= needed.floor());
    assert!(
        (moved as f64) < needed * 1.6,
        "{moved} moved, {needed:.0} needed"
    );
}

#[test]
fn input_order_does_not_matter() {
    let b = backends(50, |i| 1 + (i as u16 * 7) % 13);
    let t = identities(&b, &build(&b, M));
    let mut shuffled = b.clone();
    let mut rng = Rng(7);
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    assert_eq!(identities(&shuffled, &build(&shuffled, M)), t);
}

#[test]
fn errors_say_what_is_wrong() {
    let b = backends(3, |_| 1);
    assert_eq!(
        build_table(&b, 65536),
        Err(MaglevError::NotPrime { size: 65536 })
    );
    assert_eq!(
        build_table(&b, 0),
        Err(MaglevError::SizeOutOfRange {
            size: 0,
            max: MAX_TABLE_SIZE
        })
    );
    assert_eq!(
        build_table(&b, 1),
        Err(MaglevError::SizeOutOfRange {
            size: 1,
            max: MAX_TABLE_SIZE
        })
    );
    assert_eq!(
        build_table(&backends(4, |_| 1), 3),
        Err(MaglevError::TooManyBackends {
            backends: 4,
            table_size: 3
        })
    );
    let mut dup = backends(3, |_| 1);
    dup.push(dup[1]);
    assert_eq!(
        build_table(&dup, 7),
        Err(MaglevError::DuplicateBackend { index: 3, first: 1 })
    );
    // Drained backends do not count against the table size.
    let mut four = backends(4, |_| 1);
    four[0].weight = 0;
    assert!(build_table(&four, 3).is_ok());
}

#[test]
fn is_prime_matches_a_sieve() {
    const N: usize = 100_000;
    let mut sieve = vec![true; N];
    sieve[0] = false;
    sieve[1] = false;
    for i in 2..N {
        if sieve[i] {
            for j in (i * i..N).step_by(i) {
                sieve[j] = false;
            }
        }
    }
    for (n, &p) in sieve.iter().enumerate() {
        assert_eq!(is_prime(n as u32), p, "{n}");
    }
    for p in [65537u32, 131_071, 16_777_213, 4_294_967_291] {
        assert!(is_prime(p), "{p}");
    }
    for c in [65535u32, 131_073, 16_777_215, 4_294_967_295] {
        assert!(!is_prime(c), "{c}");
    }
}

/// The hash and therefore every table are part of the deployed contract.
#[test]
fn identity_hash_and_table_are_pinned() {
    let id = BackendIdentity::from(IpAddr::from([10, 0, 0, 11]));
    assert_eq!(identity_hash(&id, 0), PINNED_HASH);
    let b = backends(3, |i| [1u16, 2, 3][i]);
    let t = build(&b, 13);
    let c = counts(&t);
    assert_eq!((c[&0], c[&1], c[&2]), (2, 4, 7));
    assert_eq!(
        t, PINNED_13,
        "the table of a fixed input changed: every deployed flow would move"
    );
}

/// Computed independently (Python) from the FNV-1a + splitmix64 definition.
const PINNED_HASH: u64 = 5200417336937101567;

const PINNED_13: [u32; 13] = [1, 1, 2, 0, 2, 2, 2, 0, 2, 2, 2, 1, 1];

#[test]
fn build_times() {
    for (m, n) in [(M, 10usize), (M, 100), (M, 1000), (131_071, 1000)] {
        let b = backends(n, |_| 100);
        let t0 = std::time::Instant::now();
        let t = build(&b, m);
        println!("M={m} N={n}: {:?}", t0.elapsed());
        assert_eq!(t.len(), m as usize);
    }
}
