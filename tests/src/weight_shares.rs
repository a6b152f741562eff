//! Checks that connections spread over backends by weight.
//!
//! Which backend a connection lands on depends on its random source port, so
//! each backend's count is binomial: a fixed tolerance in percentage points is
//! either loose for large samples or flaky for small ones (600 connections
//! at a 50% share have a standard deviation of 2 points, so a 5-point
//! tolerance fails about once in 70 runs). The tolerance here is four
//! standard deviations of the sample (a false failure about once in 16,000
//! checks) plus one point for the Maglev table's own rounding, which is still
//! far tighter than the gap between any two weightings the tests swap.

use std::collections::BTreeMap;

/// How many standard deviations a share may stray before the check fails.
pub const SIGMAS: f64 = 4.0;

/// Percentage points allowed on top of sampling noise for the Maglev table's
/// slot rounding (a 65,537-slot table is within 0.1 point of the weights;
/// small test tables are not).
pub const TABLE_POINTS: f64 = 1.0;

/// Tolerance in percentage points for a share `p` (0..1) seen in `n` samples.
pub fn tolerance_points(p: f64, n: usize) -> f64 {
    let n = n.max(1) as f64;
    SIGMAS * (p * (1.0 - p) / n).sqrt() * 100.0 + TABLE_POINTS
}

/// Asserts that backend `i` (counted under `backend-{i}`) received a share of
/// `counts` that matches `weights[i] / sum(weights)` within
/// [`tolerance_points`]. Backends not in `weights` must receive nothing.
pub fn assert_weight_shares(counts: &BTreeMap<String, usize>, weights: &[u16], what: &str) {
    let total: usize = counts.values().sum();
    assert!(total > 0, "{what}: no connection was counted");
    let wsum: f64 = weights.iter().map(|w| f64::from(*w)).sum();
    for (i, w) in weights.iter().enumerate() {
        let got = *counts.get(&format!("backend-{i}")).unwrap_or(&0) as f64 / total as f64;
        let want = f64::from(*w) / wsum;
        let points = tolerance_points(want, total);
        assert!(
            (got - want).abs() * 100.0 <= points,
            "{what}: backend-{i} got {:.1}% of {total} connections, weight share {:.1}% \
             (+-{points:.1} points); all counts {counts:?}",
            got * 100.0,
            want * 100.0
        );
    }
    let unexpected: Vec<&String> = counts
        .keys()
        .filter(|k| {
            k.strip_prefix("backend-")
                .and_then(|i| i.parse::<usize>().ok())
                .is_none_or(|i| i >= weights.len())
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "{what}: connections reached {unexpected:?}, which is not one of the {} weighted backends",
        weights.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(v: &[usize]) -> BTreeMap<String, usize> {
        v.iter()
            .enumerate()
            .map(|(i, c)| (format!("backend-{i}"), *c))
            .collect()
    }

    #[test]
    fn the_tolerance_shrinks_with_the_sample() {
        let small = tolerance_points(0.5, 600);
        let large = tolerance_points(0.5, 60_000);
        assert!((small - 9.16).abs() < 0.05, "{small}");
        assert!((large - 1.82).abs() < 0.05, "{large}");
    }

    #[test]
    fn the_failed_ci_sample_passes_and_swapped_weights_fail() {
        // The sample that failed a fixed 5-point check in CI.
        assert_weight_shares(&counts(&[331, 189, 80]), &[300, 200, 100], "ci");
        let swapped = std::panic::catch_unwind(|| {
            assert_weight_shares(&counts(&[331, 189, 80]), &[100, 200, 300], "swapped")
        });
        assert!(swapped.is_err(), "the old weighting must not pass");
    }

    #[test]
    fn a_backend_outside_the_weights_fails() {
        let r = std::panic::catch_unwind(|| {
            assert_weight_shares(&counts(&[100, 100, 100, 5]), &[1, 1, 1], "extra")
        });
        assert!(r.is_err());
    }
}
