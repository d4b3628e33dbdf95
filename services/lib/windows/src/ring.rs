//! Rolling statistics over the last `capacity` values in O(1) per push.
//!
//! Running sums give mean, variance and the least-squares slope; they are recomputed exactly
//! from the buffer once per full turn of the ring, which bounds floating-point drift while
//! keeping the amortised cost O(1).

/// Mean, standard deviation and slope of the last `capacity` values.
#[derive(Debug, Clone)]
pub struct RollingStats {
    buf: Vec<f64>,
    capacity: usize,
    /// Index of the oldest value once the ring is full.
    head: usize,
    sum: f64,
    sum_sq: f64,
    /// Σ j·x_j with j = 0 for the oldest value.
    sum_jx: f64,
    pushes_since_exact: usize,
}

impl RollingStats {
    /// An empty window of `capacity` values (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            buf: Vec::with_capacity(capacity),
            capacity,
            head: 0,
            sum: 0.0,
            sum_sq: 0.0,
            sum_jx: 0.0,
            pushes_since_exact: 0,
        }
    }

    /// Values currently held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when no value has been pushed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// True once `capacity` values are held.
    pub fn is_full(&self) -> bool {
        self.buf.len() == self.capacity
    }

    /// Adds a value, dropping the oldest when full.
    pub fn push(&mut self, x: f64) {
        if self.buf.len() < self.capacity {
            self.sum_jx += self.buf.len() as f64 * x;
            self.buf.push(x);
            self.sum += x;
            self.sum_sq += x * x;
        } else {
            let old = self.buf[self.head];
            self.buf[self.head] = x;
            self.head = (self.head + 1) % self.capacity;
            // Every remaining value moves one index down; the new one takes the last index.
            self.sum -= old;
            self.sum_jx -= self.sum;
            self.sum_sq -= old * old;
            self.sum_jx += (self.capacity - 1) as f64 * x;
            self.sum += x;
            self.sum_sq += x * x;
        }
        self.pushes_since_exact += 1;
        if self.pushes_since_exact >= self.capacity.max(64) {
            self.recompute();
        }
    }

    fn recompute(&mut self) {
        self.pushes_since_exact = 0;
        let (mut s, mut sq, mut jx) = (0.0, 0.0, 0.0);
        for (j, x) in self.iter().enumerate() {
            s += x;
            sq += x * x;
            jx += j as f64 * x;
        }
        self.sum = s;
        self.sum_sq = sq;
        self.sum_jx = jx;
    }

    /// The values, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let (a, b) = if self.is_full() {
            (&self.buf[self.head..], &self.buf[..self.head])
        } else {
            (&self.buf[..], &self.buf[..0])
        };
        a.iter().chain(b.iter()).copied()
    }

    /// Heap bytes reserved by the buffer.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() * std::mem::size_of::<f64>()
    }

    /// Mean, or NaN when empty.
    pub fn mean(&self) -> f64 {
        if self.is_empty() {
            f64::NAN
        } else {
            self.sum / self.len() as f64
        }
    }

    /// Population standard deviation, or NaN when empty.
    pub fn std(&self) -> f64 {
        if self.is_empty() {
            return f64::NAN;
        }
        let n = self.len() as f64;
        let mean = self.sum / n;
        (self.sum_sq / n - mean * mean).max(0.0).sqrt()
    }

    /// Least-squares slope per step, or NaN with fewer than two values.
    pub fn slope(&self) -> f64 {
        let n = self.len() as f64;
        if self.len() < 2 {
            return f64::NAN;
        }
        let sj = n * (n - 1.0) / 2.0;
        let sjj = (n - 1.0) * n * (2.0 * n - 1.0) / 6.0;
        (n * self.sum_jx - sj * self.sum) / (n * sjj - sj * sj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(xs: &[f64]) -> (f64, f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let jm = (n - 1.0) / 2.0;
        let num: f64 = xs
            .iter()
            .enumerate()
            .map(|(j, x)| (j as f64 - jm) * (x - mean))
            .sum();
        let den: f64 = (0..xs.len()).map(|j| (j as f64 - jm).powi(2)).sum();
        (
            mean,
            var.sqrt(),
            if xs.len() < 2 { f64::NAN } else { num / den },
        )
    }

    #[test]
    fn a_linear_ramp_has_its_slope() {
        let mut r = RollingStats::new(5);
        for i in 0..20 {
            r.push(3.0 + 2.0 * i as f64);
        }
        assert!((r.slope() - 2.0).abs() < 1e-9);
        assert!((r.mean() - (3.0 + 2.0 * 17.0)).abs() < 1e-9);
        assert_eq!(r.iter().count(), 5);
    }

    #[test]
    fn empty_and_single_values_are_nan_not_panics() {
        let mut r = RollingStats::new(3);
        assert!(r.mean().is_nan() && r.std().is_nan() && r.slope().is_nan());
        r.push(4.0);
        assert_eq!(r.mean(), 4.0);
        assert_eq!(r.std(), 0.0);
        assert!(r.slope().is_nan());
    }

    proptest! {
        #[test]
        fn incremental_matches_naive(cap in 1usize..40, xs in proptest::collection::vec(-1e4f64..1e4, 1..300)) {
            let mut r = RollingStats::new(cap);
            for (i, &x) in xs.iter().enumerate() {
                r.push(x);
                let lo = (i + 1).saturating_sub(cap);
                let win = &xs[lo..=i];
                let got: Vec<f64> = r.iter().collect();
                prop_assert_eq!(&got[..], win);
                let (m, s, k) = naive(win);
                let tol = 1e-6 * (1.0 + m.abs() + s);
                prop_assert!((r.mean() - m).abs() < tol, "mean {} vs {}", r.mean(), m);
                prop_assert!((r.std() - s).abs() < 1e-4 * (1.0 + s) + 1e-3, "std {} vs {}", r.std(), s);
                if k.is_nan() { prop_assert!(r.slope().is_nan()) } else {
                    prop_assert!((r.slope() - k).abs() < 1e-6 * (1.0 + k.abs()) + 1e-6 * m.abs(), "slope {} vs {}", r.slope(), k);
                }
            }
        }
    }
}
