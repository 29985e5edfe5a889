//! A log-linear latency histogram in the spirit of HdrHistogram: fixed memory (about 60 KiB)
//! whatever the number of samples, and under 1% relative error.
//!
//! Values below 256 ns get one bucket each. Above that, each power of two `[2^m, 2^(m+1))`
//! is cut into 128 equal buckets, so a bucket is at most 1/128 of its values wide:
//!
//! ```text
//!   index          values (ns)          bucket width
//!   0 ..   256     0 .. 256             1
//!   256 .. 384     256 .. 512           2
//!   384 .. 512     512 .. 1024          4
//!   ...            (shift s = index / 128 - 1 for index >= 256)
//! ```

const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS; // 128 buckets per power of two
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// Counts of latencies in nanoseconds.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0, max: 0 }
    }
}

fn index(v: u64) -> usize {
    let msb = 63 - (v | 1).leading_zeros(); // position of the highest set bit
    let shift = msb.saturating_sub(SUB_BITS);
    shift as usize * SUB + (v >> shift) as usize
}

/// The smallest and largest value that land in bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let shift = if i < 2 * SUB { 0 } else { i / SUB - 1 };
    let low = ((i - shift * SUB) as u64) << shift;
    (low, low + (1u64 << shift) - 1)
}

impl Histogram {
    /// Records one value (ns).
    pub fn record(&mut self, ns: u64) {
        self.counts[index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest recorded value (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the midpoint of the bucket holding the
    /// `ceil(q * count)`-th smallest value. 0 if empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, high) = bounds(i);
                return (low + (high - low) / 2).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range() {
        let mut next = 0u64;
        for i in 0..BUCKETS {
            let (low, high) = bounds(i);
            assert_eq!(low, next, "bucket {i}");
            assert_eq!((index(low), index(high)), (i, i), "bucket {i}");
            next = high.wrapping_add(1);
        }
        assert_eq!(next, 0, "the last bucket ends at u64::MAX");
    }

    #[test]
    fn quantiles_within_one_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for q in [0.5, 0.99, 0.999] {
            let want = q * 100_000_000.0;
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.01, "q {q}: {got} vs {want}");
        }
    }
}
