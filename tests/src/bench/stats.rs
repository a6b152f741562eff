//! The benchmarks' one set of order statistics: nearest-rank percentiles,
//! the median as the 50th of them (always one of the observed values; with
//! an even count the lower middle one), and the summary of per-call timings.

/// Summary of a set of per-call durations in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub min_ns: u64,
    pub median_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

impl Summary {
    /// None for an empty sample. Sorts `samples` in place.
    pub fn of(samples: &mut [u64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Some(Self {
            count: samples.len(),
            min_ns: samples[0],
            median_ns: percentile(samples, 50.0),
            p99_ns: percentile(samples, 99.0),
            max_ns: samples[samples.len() - 1],
            mean_ns: sum as f64 / samples.len() as f64,
        })
    }
}

/// Nearest-rank percentile of sorted, non-empty `sorted`.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// The median (nearest-rank 50th percentile) of `values`; None when there
/// are none.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(percentile(&v, 50.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let s = Summary::of(&mut v).unwrap();
        assert_eq!(s.count, 100);
        assert_eq!(s.min_ns, 1);
        assert_eq!(s.median_ns, 50);
        assert_eq!(s.p99_ns, 99);
        assert_eq!(s.max_ns, 100);
        assert!((s.mean_ns - 50.5).abs() < 1e-9);
    }

    #[test]
    fn single_sample_and_empty() {
        let s = Summary::of(&mut [7]).unwrap();
        assert_eq!((s.median_ns, s.p99_ns), (7, 7));
        assert!(Summary::of(&mut []).is_none());
    }

    #[test]
    fn the_median_is_an_observed_value() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.0));
        assert_eq!(median([5.5]), Some(5.5));
        assert_eq!(median([]), None);
    }
}
