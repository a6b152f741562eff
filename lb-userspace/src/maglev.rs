//! Weighted Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4),
//! pure and deterministic.
//!
//! Each backend has a permutation of the table's slots, `(offset + j * skip) mod
//! M`, derived from a fixed hash of its identity (its address), so every
//! balancer running the same config builds the same table. Slots are handed out
//! in turns; a backend takes its next preferred slot that is still empty.
//!
//! Weights: each backend's slot count is fixed up front by the largest-remainder
//! method (exactly proportional, counts sum to M), and turns go to the backend
//! with the smallest "virtual finish time" `(placed + 1) / quota`, so every
//! backend fills at the same relative pace and all finish together. With equal
//! weights that is exactly Maglev's round robin; with unequal ones it keeps
//! Maglev's low disruption, because a backend's slots depend on its own
//! permutation and on how far everyone has progressed, not on list positions.
//!
//! The table depends only on the set of (identity, weight): input order does
//! not matter (backends are sorted by identity first).

use std::{cmp::Ordering, collections::BinaryHeap, net::IpAddr};

use thiserror::Error;

/// Slots per VIP table unless configured otherwise (a prime, as Maglev needs).
pub const DEFAULT_TABLE_SIZE: u32 = 65537;
/// Largest table size accepted (a prime; 64 MiB of slots per VIP).
pub const MAX_TABLE_SIZE: u32 = 16_777_213;
/// A slot no backend owns (only when no backend has a weight).
pub const NO_ENTRY: u32 = u32::MAX;

/// What a backend hashes as: its address family and address. Stable across
/// hosts and versions; changing it moves every flow on upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendIdentity([u8; 17]);

impl From<IpAddr> for BackendIdentity {
    fn from(addr: IpAddr) -> Self {
        let mut id = [0u8; 17];
        match addr {
            IpAddr::V4(a) => {
                id[0] = 4;
                id[1..5].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                id[0] = 6;
                id[1..].copy_from_slice(&a.octets());
            }
        }
        Self(id)
    }
}

/// One input of [`build_table`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaglevBackend {
    pub identity: BackendIdentity,
    /// 0 = no slots (draining).
    pub weight: u16,
}

impl MaglevBackend {
    pub fn new(addr: IpAddr, weight: u16) -> Self {
        Self {
            identity: addr.into(),
            weight,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MaglevError {
    #[error("table size {size} is not a prime")]
    NotPrime { size: u32 },
    #[error("table size {size} is outside 2..={max}")]
    SizeOutOfRange { size: u32, max: u32 },
    #[error("{backends} weighted backends do not fit in a table of {table_size} slots")]
    TooManyBackends { backends: usize, table_size: u32 },
    #[error("backend {index} has the same identity as backend {first}")]
    DuplicateBackend { index: usize, first: usize },
}

/// Whether `n` is prime (trial division; fast for table sizes).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let n = u64::from(n);
    let mut i = 5u64;
    while i * i <= n {
        if n % i == 0 || n % (i + 2) == 0 {
            return false;
        }
        i += 6;
    }
    true
}

/// Checks a table size: prime and within range.
pub fn check_table_size(size: u32) -> Result<(), MaglevError> {
    if !(2..=MAX_TABLE_SIZE).contains(&size) {
        return Err(MaglevError::SizeOutOfRange {
            size,
            max: MAX_TABLE_SIZE,
        });
    }
    if !is_prime(size) {
        return Err(MaglevError::NotPrime { size });
    }
    Ok(())
}

/// Builds a table of `table_size` slots; each slot holds an index into
/// `backends`. Backends of weight 0 get no slot. Without any weighted backend
/// every slot is [`NO_ENTRY`].
pub fn build_table(backends: &[MaglevBackend], table_size: u32) -> Result<Vec<u32>, MaglevError> {
    check_table_size(table_size)?;
    check_duplicates(backends)?;
    let m = table_size;
    let mut order: Vec<usize> = (0..backends.len())
        .filter(|&i| backends[i].weight > 0)
        .collect();
    if order.is_empty() {
        return Ok(vec![NO_ENTRY; m as usize]);
    }
    if order.len() > m as usize {
        return Err(MaglevError::TooManyBackends {
            backends: order.len(),
            table_size: m,
        });
    }
    order.sort_by_key(|&i| backends[i].identity);

    let weights: Vec<u64> = order
        .iter()
        .map(|&i| u64::from(backends[i].weight))
        .collect();
    let quotas = quotas(&weights, m);
    let mut perms: Vec<Permutation> = order
        .iter()
        .map(|&i| Permutation::new(&backends[i].identity, m))
        .collect();

    let mut table = vec![NO_ENTRY; m as usize];
    let mut placed = vec![0u64; order.len()];
    let mut heap: BinaryHeap<Turn> = (0..order.len())
        .filter(|&rank| quotas[rank] > 0)
        .map(|rank| Turn {
            placed: 0,
            quota: quotas[rank],
            rank,
        })
        .collect();
    while let Some(turn) = heap.pop() {
        let rank = turn.rank;
        let slot = loop {
            let s = perms[rank].next();
            if table[s] == NO_ENTRY {
                break s;
            }
        };
        table[slot] = order[rank] as u32;
        placed[rank] += 1;
        if placed[rank] < quotas[rank] {
            heap.push(Turn {
                placed: placed[rank],
                quota: quotas[rank],
                rank,
            });
        }
    }
    Ok(table)
}

fn check_duplicates(backends: &[MaglevBackend]) -> Result<(), MaglevError> {
    let mut ids: Vec<(BackendIdentity, usize)> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| (b.identity, i))
        .collect();
    ids.sort();
    for w in ids.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(MaglevError::DuplicateBackend {
                index: w[1].1.max(w[0].1),
                first: w[1].1.min(w[0].1),
            });
        }
    }
    Ok(())
}

/// Slot counts proportional to `weights`, summing to `m` exactly (largest
/// remainder; ties go to the earlier backend in identity order).
fn quotas(weights: &[u64], m: u32) -> Vec<u64> {
    let total: u64 = weights.iter().sum();
    let m = u64::from(m);
    let mut q: Vec<u64> = weights.iter().map(|w| m * w / total).collect();
    let assigned: u64 = q.iter().sum();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    // Remainders compared exactly: (m * w) mod total.
    by_remainder.sort_by(|&a, &b| {
        let ra = (m * weights[a]) % total;
        let rb = (m * weights[b]) % total;
        rb.cmp(&ra).then(a.cmp(&b))
    });
    for &i in by_remainder.iter().take((m - assigned) as usize) {
        q[i] += 1;
    }
    q
}

/// A backend's preference order over the slots.
struct Permutation {
    next: u64,
    skip: u64,
    m: u64,
}

impl Permutation {
    fn new(id: &BackendIdentity, m: u32) -> Self {
        let m = u64::from(m);
        Self {
            next: identity_hash(id, 0x6f66_6673_6574_2121) % m,
            skip: identity_hash(id, 0x736b_6970_2121_2121) % (m - 1) + 1,
            m,
        }
    }

    /// The next slot in this backend's order (cycles through all `m` slots).
    fn next(&mut self) -> usize {
        let s = self.next;
        self.next = (self.next + self.skip) % self.m;
        s as usize
    }
}

/// The turn order: the smallest virtual finish time `(placed + 1) / quota` goes
/// first (a min-heap through reversed `Ord`), ties by identity rank.
#[derive(PartialEq, Eq)]
struct Turn {
    placed: u64,
    quota: u64,
    rank: usize,
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> Ordering {
        // a/b < c/d  <=>  a*d < c*b (all positive, no overflow: < 2^25 * 2^24).
        let lhs = (self.placed + 1) * other.quota;
        let rhs = (other.placed + 1) * self.quota;
        rhs.cmp(&lhs).then(other.rank.cmp(&self.rank))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// FNV-1a over the identity, seeded, then the splitmix64 finalizer: stable,
/// well mixed, no dependency. Pinned by tests: changing it moves every flow.
fn identity_hash(id: &BackendIdentity, seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in id.0 {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
#[path = "maglev/tests.rs"]
mod tests;
