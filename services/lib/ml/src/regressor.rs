//! A Random Forest regressor on the classifier's machinery (same bins, same flat trees, same
//! deterministic parallel training), for targets such as remaining useful life.
//!
//! Splits maximise the weighted variance reduction; a leaf holds the mean target of its
//! bootstrap rows; the forest predicts the mean over trees, and the spread of the trees'
//! predictions gives an interval ([`ForestRegressor::predict_interval_row`]).

use ndarray::ArrayView2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::binning::BinMapper;
use crate::flat::{FlatForest, RegressionTrees, MISSING_LEFT};
use crate::forest::{MaxFeatures, MlError};
use crate::regtree::{self, RegData};
use crate::tree::TreeConfig;

/// Batches at least this large are predicted in parallel.
const PARALLEL_BATCH_ROWS: usize = 512;

/// Regressor training parameters. [`Default`] gives the documented values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegressorParams {
    /// Number of trees (default 200).
    pub n_trees: usize,
    /// Maximum depth, the root being depth 0 (default 20; at least 1).
    pub max_depth: usize,
    /// A node with fewer rows is not split (default 10).
    pub min_samples_split: usize,
    /// Each child keeps at least this many distinct rows (default 5; at least 1).
    pub min_samples_leaf: usize,
    /// Features sampled per split (default `Fraction(1/3)`, the usual choice for regression).
    pub max_features: MaxFeatures,
    /// Train each tree on a bootstrap sample (default true).
    pub bootstrap: bool,
    /// Seed; tree `t` uses ChaCha8 stream `t` of it (default 42).
    pub seed: u64,
    /// Bins per feature, 2..=255 (default 255).
    pub max_bins: usize,
}

impl Default for RegressorParams {
    fn default() -> Self {
        Self {
            n_trees: 200,
            max_depth: 20,
            min_samples_split: 10,
            min_samples_leaf: 5,
            max_features: MaxFeatures::Fraction(1.0 / 3.0),
            bootstrap: true,
            seed: 42,
            max_bins: 255,
        }
    }
}

impl RegressorParams {
    fn validate(&self) -> Result<(), MlError> {
        let bad = |what: &str| Err(MlError::InvalidParams(what.to_string()));
        if self.n_trees == 0 {
            return bad("n_trees must be at least 1");
        }
        if self.max_depth == 0 {
            return bad("max_depth must be at least 1");
        }
        if self.min_samples_leaf == 0 {
            return bad("min_samples_leaf must be at least 1");
        }
        if !(2..=255).contains(&self.max_bins) {
            return bad("max_bins must be in 2..=255");
        }
        Ok(())
    }
}

/// A trained Random Forest regressor.
///
/// Serialized like [`crate::Forest`]: `trees` in the same parallel-array form (node values being
/// the nodes' mean targets rather than probabilities) and `importance`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForestRegressor {
    trees: RegressionTrees,
    importance: Vec<f32>,
}

impl ForestRegressor {
    /// Train on `x` (row-major `n_rows × n_features`, NaN = missing) and finite targets `y`.
    ///
    /// `progress` is called once per finished tree, from worker threads. The result depends
    /// only on the data and `params`, not on the number of threads.
    pub fn fit(
        x: ArrayView2<f32>,
        y: &[f32],
        params: &RegressorParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<ForestRegressor, MlError> {
        let (n_rows, n_features) = x.dim();
        if n_rows == 0 || n_features == 0 {
            return Err(MlError::EmptyData {
                rows: n_rows,
                features: n_features,
            });
        }
        if y.len() != n_rows {
            return Err(MlError::LengthMismatch {
                rows: n_rows,
                labels: y.len(),
            });
        }
        if n_features >= MISSING_LEFT as usize {
            return Err(MlError::InvalidParams(format!(
                "{n_features} features is too many"
            )));
        }
        if let Some(row) = y.iter().position(|v| !v.is_finite()) {
            return Err(MlError::NonFiniteTarget { row, value: y[row] });
        }
        params.validate()?;
        let cfg = TreeConfig {
            max_depth: params.max_depth,
            min_samples_split: params.min_samples_split,
            min_samples_leaf: params.min_samples_leaf,
            max_features: params.max_features.resolve(n_features)?,
            bootstrap: params.bootstrap,
        };
        let offset = y.iter().map(|&v| f64::from(v)).sum::<f64>() / n_rows as f64;
        let centred: Vec<f64> = y.iter().map(|&v| f64::from(v) - offset).collect();
        let range = y
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let mapper = BinMapper::fit(x, params.max_bins);
        let bins = mapper.transform(x);
        let data = RegData {
            bins: &bins,
            n_rows,
            n_features,
            mapper: &mapper,
            y: &centred,
            offset,
            range,
        };

        let grown: Vec<_> = (0..params.n_trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
                rng.set_stream(t as u64);
                let tree = regtree::grow(&data, &cfg, &mut rng);
                progress();
                tree
            })
            .collect();

        let mut trees = FlatForest {
            n_features,
            ..FlatForest::default()
        };
        let mut importance = vec![0.0f64; n_features];
        for tree in &grown {
            trees.push_tree(&tree.nodes, &tree.values);
            let total: f64 = tree.importance.iter().sum();
            if total > 0.0 {
                for (acc, g) in importance.iter_mut().zip(&tree.importance) {
                    *acc += g / total;
                }
            }
        }
        let total: f64 = importance.iter().sum();
        let importance = if total > 0.0 {
            importance.iter().map(|v| (v / total) as f32).collect()
        } else {
            vec![1.0 / n_features as f32; n_features] // no tree split at all: nothing to rank
        };
        Ok(ForestRegressor {
            trees: RegressionTrees(trees),
            importance,
        })
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.trees.0.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.0.roots.len()
    }

    /// Total number of nodes over all trees.
    pub fn n_nodes(&self) -> usize {
        self.trees.0.nodes.len()
    }

    /// The prediction for one row: the mean of the trees' leaf values (summed in `f64`, so it
    /// never leaves the range of the training targets). Allocates nothing.
    ///
    /// NaN means missing; if `row` is shorter than [`ForestRegressor::n_features`], the absent
    /// trailing values are treated as missing too, and extra values are ignored.
    pub fn predict_row(&self, row: &[f32]) -> f32 {
        self.trees.0.mean_f64(row) as f32
    }

    /// Predictions for every row of `x`, in parallel for large batches. Identical to calling
    /// [`ForestRegressor::predict_row`] on each row.
    pub fn predict(&self, x: ArrayView2<f32>) -> Vec<f32> {
        let x = x.as_standard_layout();
        let rows: Vec<_> = x.rows().into_iter().collect();
        let one = |r: &ndarray::ArrayView1<f32>| match r.as_slice() {
            Some(s) => self.predict_row(s),
            None => self.predict_row(&r.to_vec()),
        };
        if rows.len() >= PARALLEL_BATCH_ROWS {
            rows.par_iter().map(one).collect()
        } else {
            rows.iter().map(one).collect()
        }
    }

    /// The prediction of each tree for `row`, in tree order.
    pub fn tree_predictions(&self, row: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.n_trees());
        self.trees.0.tree_values(row, &mut out);
        out
    }

    /// `(estimate, lo, hi)`: [`ForestRegressor::predict_row`] and an interval from the spread of
    /// the trees, the `lo_q` and `hi_q` quantiles of their predictions (linear interpolation
    /// between order statistics, as numpy's default). Quantiles are clamped to `[0, 1]` (NaN
    /// reads as 0.5) and swapped if `lo_q > hi_q`; the interval is widened to contain the
    /// estimate when the trees are skewed enough for the mean to fall outside it, so
    /// `lo <= estimate <= hi` always holds.
    ///
    /// The spread of the trees measures how much the forest disagrees with itself (bootstrap
    /// and feature sampling), not a calibrated prediction interval: on unseen data the truth
    /// falls outside it more often than `hi_q - lo_q` suggests.
    pub fn predict_interval_row(&self, row: &[f32], lo_q: f64, hi_q: f64) -> (f32, f32, f32) {
        let estimate = self.predict_row(row);
        let mut values = self.tree_predictions(row);
        values.sort_unstable_by(f32::total_cmp);
        let clamp = |q: f64| if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let (mut a, mut b) = (clamp(lo_q), clamp(hi_q));
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        let lo = quantile_sorted(&values, a).min(estimate);
        let hi = quantile_sorted(&values, b).max(estimate);
        (estimate, lo, hi)
    }

    /// Mean decrease in squared error per feature, normalized per tree then overall; sums to 1.
    pub fn feature_importance(&self) -> Vec<f32> {
        self.importance.clone()
    }
}

/// The `q`-quantile (`0 <= q <= 1`) of ascending `sorted`, interpolating linearly between order
/// statistics; NaN for no values.
fn quantile_sorted(sorted: &[f32], q: f64) -> f32 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f32::NAN;
    };
    let pos = q * last as f64;
    let i = (pos.floor() as usize).min(last);
    let j = (i + 1).min(last);
    let (a, b) = (f64::from(sorted[i]), f64::from(sorted[j]));
    // Clamped: rounding must not step outside the two neighbours.
    ((a + (b - a) * (pos - i as f64)) as f32).clamp(sorted[i], sorted[j])
}

#[cfg(test)]
#[path = "regressor_tests.rs"]
mod tests;
