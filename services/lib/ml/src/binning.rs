//! Quantize raw features once into small bin indices.
//!
//! Each feature gets ascending cut points chosen at quantiles of its non-missing values.
//! A value `v` falls into bin `i`, the first `i` with `v <= cuts[i]` (or `cuts.len()` if
//! none), so "bin `<= b`" is exactly "value `<= cuts[b]`": a split learned on bins can be
//! stored as a real `f32` threshold and applied to raw values. Missing values (NaN) go to
//! the dedicated bin [`NAN_BIN`].

use ndarray::ArrayView2;

/// The bin index reserved for missing values (NaN).
pub(crate) const NAN_BIN: u8 = u8::MAX;

/// The largest number of non-missing bins a feature can have (one index is kept for NaN).
pub(crate) const MAX_VALUE_BINS: usize = NAN_BIN as usize;

/// Cut points for every feature.
#[derive(Clone, Debug)]
pub(crate) struct BinMapper {
    cuts: Vec<Vec<f32>>,
}

impl BinMapper {
    /// Choose at most `max_bins` bins per feature (clamped to `2..=255`) from the columns of `x`.
    pub(crate) fn fit(x: ArrayView2<f32>, max_bins: usize) -> Self {
        let max_bins = max_bins.clamp(2, MAX_VALUE_BINS);
        let cuts = x
            .columns()
            .into_iter()
            .map(|col| {
                let mut v: Vec<f32> = col.iter().copied().filter(|x| !x.is_nan()).collect();
                v.sort_unstable_by(f32::total_cmp);
                quantile_cuts(&v, max_bins)
            })
            .collect();
        Self { cuts }
    }

    /// The cut points of feature `f`: bin `b` holds values in `(cuts[b-1], cuts[b]]`.
    pub(crate) fn cuts(&self, f: usize) -> &[f32] {
        &self.cuts[f]
    }

    /// Number of non-missing bins of feature `f`.
    pub(crate) fn n_bins(&self, f: usize) -> usize {
        self.cuts[f].len() + 1
    }

    /// The bin of value `v` in feature `f`.
    pub(crate) fn bin(&self, f: usize, v: f32) -> u8 {
        if v.is_nan() {
            return NAN_BIN;
        }
        let cuts = &self.cuts[f];
        // First index with v <= cut; at most cuts.len() <= 254, so it fits in a u8.
        cuts.partition_point(|&c| c < v) as u8
    }

    /// Bin the whole matrix, column-major: the result's `f * n_rows + row` is row `row`, feature `f`.
    pub(crate) fn transform(&self, x: ArrayView2<f32>) -> Vec<u8> {
        let mut out = Vec::with_capacity(x.len());
        for (f, col) in x.columns().into_iter().enumerate() {
            out.extend(col.iter().map(|&v| self.bin(f, v)));
        }
        out
    }
}

/// Cut points splitting sorted `values` into at most `max_bins` groups of about equal size.
///
/// Cuts sit halfway between neighbouring distinct values, so no value equals a cut unless the
/// midpoint rounds onto the upper value, in which case the lower value is used.
fn quantile_cuts(sorted: &[f32], max_bins: usize) -> Vec<f32> {
    let mut distinct: Vec<(f32, usize)> = Vec::new();
    for &v in sorted {
        match distinct.last_mut() {
            Some((last, count)) if *last == v => *count += 1,
            _ => distinct.push((v, 1)),
        }
    }
    let n = sorted.len();
    let mut cuts = Vec::new();
    let mut seen = 0usize;
    let mut next_target = 1usize;
    for w in distinct.windows(2) {
        let (lo, count) = w[0];
        let hi = w[1].0;
        seen += count;
        // Emit a cut when we've passed the next quantile target, or always if there are few values.
        if distinct.len() <= max_bins || seen * max_bins >= next_target * n {
            cuts.push(midpoint(lo, hi));
            while next_target * n <= seen * max_bins {
                next_target += 1;
            }
            if cuts.len() + 1 >= max_bins {
                break;
            }
        }
    }
    cuts
}

/// A threshold `t` with `lo <= t < hi`.
fn midpoint(lo: f32, hi: f32) -> f32 {
    let m = ((f64::from(lo) + f64::from(hi)) / 2.0) as f32;
    if m >= hi || !m.is_finite() {
        lo
    } else {
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn few_distinct_values_get_one_bin_each() {
        let cuts = quantile_cuts(&[1.0, 1.0, 2.0, 3.0, 3.0], 255);
        assert_eq!(cuts, vec![1.5, 2.5]);
    }

    #[test]
    fn many_values_are_capped_and_roughly_balanced() {
        let v: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let cuts = quantile_cuts(&v, 10);
        assert_eq!(cuts.len(), 9);
        let m = BinMapper { cuts: vec![cuts] };
        let mut counts = [0usize; 10];
        for &x in &v {
            counts[m.bin(0, x) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..=1100).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn bin_matches_threshold_semantics() {
        let x = Array2::from_shape_vec((6, 1), vec![0.0, 1.0, 2.0, f32::NAN, 3.0, 4.0]).unwrap(); // 6 values for 6×1
        let m = BinMapper::fit(x.view(), 255);
        for v in [-1.0f32, 0.0, 0.5, 1.0, 2.2, 4.0, 9.0] {
            let b = m.bin(0, v) as usize;
            for (i, &c) in m.cuts(0).iter().enumerate() {
                assert_eq!(b <= i, v <= c, "v={v} b={b} cut {i}={c}");
            }
        }
        assert_eq!(m.bin(0, f32::NAN), NAN_BIN);
        assert_eq!(m.transform(x.view())[3], NAN_BIN);
    }

    #[test]
    fn all_nan_or_constant_column_has_one_bin() {
        assert!(quantile_cuts(&[], 255).is_empty());
        assert!(quantile_cuts(&[2.0, 2.0], 255).is_empty());
    }
}
