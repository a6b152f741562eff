//! The tests' one random number generator: a deterministic xorshift, so a
//! failure reproduces with the same seed.

pub struct TestRng(u64);

impl TestRng {
    /// `seed` must not be 0 (xorshift would stay at 0).
    pub fn new(seed: u64) -> Self {
        assert_ne!(seed, 0, "xorshift needs a non-zero seed");
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
