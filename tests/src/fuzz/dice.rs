//! The fuzzer's randomness: the tests' xorshift generator seeded from
//! `--seed` (through SplitMix64, so nearby seeds give unrelated streams),
//! with the few draws the generator and the mutator need.

use crate::test_rng::TestRng;

pub struct Dice(TestRng);

impl Dice {
    pub fn new(seed: u64) -> Self {
        // SplitMix64 of the seed: never 0 for xorshift (an odd constant is
        // or-ed in), and seeds 1, 2, 3... start far apart.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Self(TestRng::new(z | 1))
    }

    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0.below(n as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.0.below(den) < num
    }

    pub fn byte(&mut self) -> u8 {
        self.u64() as u8
    }

    pub fn u16(&mut self) -> u16 {
        self.u64() as u16
    }

    pub fn u32(&mut self) -> u32 {
        self.u64() as u32
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// One of `fixed`, or (as likely as each of them) `random(self)`.
    pub fn pick_or<T: Copy>(&mut self, fixed: &[T], random: impl FnOnce(&mut Self) -> T) -> T {
        let i = self.below(fixed.len() + 1);
        if i < fixed.len() {
            fixed[i]
        } else {
            random(self)
        }
    }

    pub fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        let mut left = n;
        while left > 0 {
            let bytes = self.u64().to_le_bytes();
            let k = left.min(8);
            out.extend_from_slice(&bytes[..k]);
            left -= k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let draw = |seed| {
            let mut d = Dice::new(seed);
            (0..8).map(|_| d.u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        assert_ne!(draw(0), draw(1), "seed 0 is usable");
    }

    #[test]
    fn ranges_stay_inside() {
        let mut d = Dice::new(7);
        for _ in 0..1000 {
            let r = d.range(3, 5);
            assert!((3..=5).contains(&r));
        }
        let mut v = Vec::new();
        d.fill(&mut v, 13);
        assert_eq!(v.len(), 13);
    }
}
