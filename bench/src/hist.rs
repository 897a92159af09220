//! A log-linear latency histogram in the style of HdrHistogram.
//!
//! ## Format
//!
//! Values (nanoseconds) below 256 get a bucket each. Above that, every power
//! of two `[2^e, 2^(e+1))` is cut into 128 equal sub-buckets, so a bucket's
//! width is at most 1/128 of its lower bound: any reported percentile is
//! within 0.8% of the true value (HdrHistogram with 2 significant digits
//! gives the same bound). The whole `u64` range takes 7,424 counters.
//!
//! | value `v` | bucket index |
//! |---|---|
//! | `v < 256` | `v` |
//! | otherwise, `e = msb(v)`, `s = e - 7` | `s * 128 + (v >> s)` |

/// log2 of the sub-buckets per power of two.
const SUB_BITS: u32 = 7;
const SUB_COUNT: u64 = 1 << SUB_BITS;
/// Buckets needed for `u64::MAX`: shift 56, mantissa 255.
const BUCKETS: usize = (56 * SUB_COUNT + 2 * SUB_COUNT) as usize;

/// Counts of recorded values, plus exact min, max and sum.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }
}

fn index_of(v: u64) -> usize {
    if v < 2 * SUB_COUNT {
        return v as usize;
    }
    let shift = (63 - v.leading_zeros()) - SUB_BITS;
    (u64::from(shift) * SUB_COUNT + (v >> shift)) as usize
}

/// The largest value that falls into bucket `idx` (HdrHistogram's
/// "highest equivalent value").
fn highest_in(idx: usize) -> u64 {
    let idx = idx as u64;
    if idx < 2 * SUB_COUNT {
        return idx;
    }
    let shift = idx / SUB_COUNT - 1;
    let mantissa = idx - shift * SUB_COUNT;
    (mantissa << shift) + ((1u64 << shift) - 1)
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, v: u64) {
        self.counts[index_of(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Exact largest value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Exact smallest value (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// Exact mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at percentile `q` (0..=100): the smallest bucket whose
    /// cumulative count reaches `q% of total`, rounded to nearest as
    /// HdrHistogram's `getValueAtPercentile` does (so float error in
    /// `99.9 / 100 * 1000` cannot push the rank past 999), reported as that
    /// bucket's highest value but never above the exact max.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = (((q / 100.0) * self.total as f64 + 0.5) as u64).max(1);
        let mut seen = 0;
        for (idx, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return highest_in(idx).min(self.max).max(self.min);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_are_contiguous() {
        // Every index's lower bound is one past the previous index's highest.
        for idx in 1..BUCKETS {
            assert_eq!(index_of(highest_in(idx - 1) + 1), idx, "idx {idx}");
        }
        assert_eq!(index_of(u64::MAX), BUCKETS - 1);
        assert_eq!(highest_in(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn values_below_256_are_exact() {
        for v in 0..256 {
            assert_eq!(highest_in(index_of(v)), v);
        }
    }

    #[test]
    fn relative_error_is_below_one_percent() {
        let mut v = 1u64;
        while v < u64::MAX / 3 {
            let hi = highest_in(index_of(v));
            assert!(hi >= v);
            assert!((hi - v) as f64 <= v as f64 / 128.0, "v {v} hi {hi}");
            v = v * 3 + 1;
        }
    }

    #[test]
    fn percentiles_of_uniform_1_to_10000() {
        let mut h = Histogram::default();
        for v in 1..=10_000 {
            h.record(v);
        }
        assert_eq!(h.len(), 10_000);
        assert_eq!((h.min(), h.max()), (1, 10_000));
        assert!((h.mean() - 5000.5).abs() < 1e-9);
        for (q, exact) in [
            (50.0, 5_000u64),
            (90.0, 9_000),
            (99.0, 9_900),
            (99.9, 9_990),
        ] {
            let got = h.percentile(q);
            assert!(got >= exact, "p{q}: {got}");
            assert!((got - exact) as f64 <= exact as f64 / 128.0, "p{q}: {got}");
        }
        assert_eq!(h.percentile(100.0), 10_000);
        assert_eq!(h.percentile(0.0), 1);
    }

    #[test]
    fn single_value_and_empty() {
        let mut h = Histogram::default();
        assert_eq!(
            (h.percentile(50.0), h.max(), h.min(), h.mean()),
            (0, 0, 0, 0.0)
        );
        h.record(123_457);
        for q in [0.0, 50.0, 99.9, 100.0] {
            assert_eq!(h.percentile(q), 123_457);
        }
    }

    #[test]
    fn outlier_shows_only_in_the_tail() {
        let mut h = Histogram::default();
        for _ in 0..999 {
            h.record(20_000);
        }
        h.record(5_000_000);
        assert!(h.percentile(99.0) < 20_200);
        assert!(h.percentile(99.9) < 20_200);
        assert_eq!(h.percentile(100.0), 5_000_000);
    }
}
