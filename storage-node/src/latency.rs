//! Latency histograms for `stats.json`: counts in power-of-two buckets of
//! microseconds, cheap enough for every chunk.

use std::time::Duration;

/// Buckets: `[0, 2)`, `[2, 4)`, ... `[2^(N-1), inf)` microseconds.
const BUCKETS: usize = 26;

/// How long something took, over many occurrences.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Histogram {
    pub count: u64,
    pub sum_us: u64,
    pub max_us: u64,
    /// Bucket `i` counts values below `2^(i+1)` us (and at least `2^i`
    /// but for the first); the last has no upper bound.
    pub buckets: [u64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            count: 0,
            sum_us: 0,
            max_us: 0,
            buckets: [0; BUCKETS],
        }
    }
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
        let i = (64 - us.leading_zeros() as usize).saturating_sub(1);
        self.buckets[i.min(BUCKETS - 1)] += 1;
    }

    /// Adds `o`'s occurrences to these.
    pub fn merge(&mut self, o: &Histogram) {
        self.count += o.count;
        self.sum_us = self.sum_us.saturating_add(o.sum_us);
        self.max_us = self.max_us.max(o.max_us);
        for (a, b) in self.buckets.iter_mut().zip(o.buckets.iter()) {
            *a += b;
        }
    }

    /// The upper bound (us) of the bucket holding the `p`th percentile.
    pub fn percentile_bound_us(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return if i + 1 == BUCKETS {
                    self.max_us
                } else {
                    (1u64 << (i + 1)).min(self.max_us.max(1))
                };
            }
        }
        self.max_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_powers_of_two() {
        let mut h = Histogram::default();
        for us in [0, 1, 3, 900, 1100, 5000] {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count, 6);
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[9], 1);
        assert_eq!(h.buckets[10], 1);
        assert_eq!(h.buckets[12], 1);
        assert_eq!(h.percentile_bound_us(50.0), 4);
        assert_eq!(h.percentile_bound_us(100.0), 5000);
    }
}
