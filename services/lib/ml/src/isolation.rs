//! Isolation Forest (Liu, Ting and Zhou 2008): anomaly detection without failure history.
//!
//! Each tree is grown on a random subsample of `max_samples` rows (without replacement) by
//! picking a random feature and a split drawn uniformly between the node's minimum and maximum
//! of that feature, until a node holds one row or reaches the height limit
//! `ceil(log2(subsample))`. Anomalies are isolated in few splits, so their mean path length is
//! short. The score of a row is `s = 2^(-E[h(x)] / c(ψ))` in `(0, 1]`, where `h(x)` is the path
//! length to the reached leaf plus `c(leaf size)` for the rows the height limit left unsplit,
//! `ψ` the subsample size and `c(n) = 2 H(n - 1) - 2 (n - 1) / n` the average path length of an
//! unsuccessful binary-search-tree lookup among `n` keys. Scores near 1 are anomalies; scores
//! well below 0.5 are normal. Pick the alarm threshold from training scores with
//! [`threshold_for_rate`] (a row is anomalous when its score is strictly above it).
//!
//! Trees are stored in the same flat, validated node arrays as the forests (leaf values are the
//! path lengths `h`); training is parallel over trees and deterministic: tree `t` draws from
//! ChaCha8 stream `t` of the seed.
//!
//! # Missing values
//! A NaN feature value (or a feature absent from a short row) follows, at every split on that
//! feature, the child that received more of the tree's training rows (ties: left). Missing
//! values thus take the "typical" branch and do not by themselves make a row look anomalous;
//! a row of only NaN gets a path as long as the trees' bulk. NaN training values are ignored
//! when a node's minimum and maximum are found, and rows holding them follow the same rule.
//! Infinite values are ordinary values beyond every threshold.

use ndarray::ArrayView2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::flat::{FlatForest, Node, RegressionTrees, Values, LEAF, MISSING_LEFT};
use crate::forest::MlError;

/// Batches at least this large are scored in parallel.
const PARALLEL_BATCH_ROWS: usize = 512;
/// Rows scored together, tree by tree.
const BLOCK_ROWS: usize = 128;
/// Largest path length a loaded model may store in a node. Real trees stay far below (a
/// height limit of 32 plus `c(2^32)` ≈ 44 is about 76), and `2^-(100 / 1)` is still a
/// positive `f32`, so a validated model always scores in `(0, 1]`.
pub const MAX_PATH_LENGTH: f32 = 100.0;

/// Euler-Mascheroni constant, for the harmonic number approximation in [`average_path_length`].
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// `c(n)`: the average path length of an unsuccessful search in a binary search tree of `n`
/// keys, `2 (ln(n - 1) + γ) - 2 (n - 1) / n`; 0 for `n <= 1` and 1 for `n == 2` (as
/// scikit-learn).
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// Isolation Forest training parameters. [`Default`] gives the paper's values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IsolationParams {
    /// Number of trees (default 100).
    pub n_trees: usize,
    /// Rows sampled (without replacement) per tree, capped at the rows given (default 256; at
    /// least 2).
    pub max_samples: usize,
    /// Height limit, the root being depth 0; `None` (default) is `ceil(log2(subsample))`.
    pub max_depth: Option<usize>,
    /// Seed; tree `t` uses ChaCha8 stream `t` of it (default 42).
    pub seed: u64,
}

impl Default for IsolationParams {
    fn default() -> Self {
        Self {
            n_trees: 100,
            max_samples: 256,
            max_depth: None,
            seed: 42,
        }
    }
}

impl IsolationParams {
    fn validate(&self) -> Result<(), MlError> {
        let bad = |what: &str| Err(MlError::InvalidParams(what.to_string()));
        if self.n_trees == 0 {
            return bad("n_trees must be at least 1");
        }
        if self.max_samples < 2 {
            return bad("max_samples must be at least 2");
        }
        if self.max_depth == Some(0) {
            return bad("max_depth must be at least 1");
        }
        Ok(())
    }
}

/// Why a stored Isolation Forest was refused (reported by serde while deserializing).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum IsolationModelError {
    /// The subsample size the scores are normalised by is below 2 (`c(ψ)` would be 0).
    #[error("subsample size {0} is below 2")]
    Subsample(usize),
    /// The trees would index out of bounds or loop, or a value is not finite.
    #[error("invalid trees: {0}")]
    Trees(String),
    /// A node's path length is negative or above [`MAX_PATH_LENGTH`].
    #[error("node {node} has path length {value}, outside [0, {MAX_PATH_LENGTH}]")]
    PathLength {
        /// The node.
        node: usize,
        /// Its stored path length.
        value: f32,
    },
}

/// A trained Isolation Forest. See the [module docs](self) for the score and missing values.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "IsolationRepr")]
pub struct IsolationForest {
    /// Flat trees whose node values are path lengths (leaves: `depth + c(leaf size)`).
    trees: RegressionTrees,
    /// Rows each tree was grown on, `ψ`; scores are normalised by `c(ψ)`.
    subsample: usize,
}

/// The serialized form, validated into an [`IsolationForest`].
#[derive(Deserialize)]
struct IsolationRepr {
    trees: RegressionTrees,
    subsample: usize,
}

impl TryFrom<IsolationRepr> for IsolationForest {
    type Error = IsolationModelError;

    fn try_from(r: IsolationRepr) -> Result<Self, IsolationModelError> {
        let model = IsolationForest {
            trees: r.trees,
            subsample: r.subsample,
        };
        model.validate()?;
        Ok(model)
    }
}

/// One tree under construction: pre-order nodes with right indices relative to the tree's
/// first node and `LEAF` markers, and the node values (depth for internal nodes, `h` at leaves).
struct Builder<'a> {
    x: ArrayView2<'a, f32>,
    max_depth: usize,
    nodes: Vec<Node>,
    values: Vec<f32>,
    features: Vec<usize>,
}

impl Builder<'_> {
    /// Grow the subtree of the rows `idx` at `depth`. Reorders `idx`.
    fn grow(&mut self, idx: &mut [usize], depth: usize, rng: &mut ChaCha8Rng) {
        let split = if depth >= self.max_depth || idx.len() <= 1 {
            None
        } else {
            self.pick_split(idx, rng)
        };
        let Some((feature, threshold)) = split else {
            self.nodes.push(Node {
                feature: LEAF,
                threshold: f32::NAN,
                right: 0,
            });
            self.values
                .push((depth as f64 + average_path_length(idx.len())) as f32);
            return;
        };
        // Three-way partition: left (v <= threshold) | NaN | right.
        let x = self.x;
        let value = |i: usize| x[[i, feature]];
        let mut lo = 0;
        for k in 0..idx.len() {
            let v = value(idx[k]);
            if v <= threshold {
                idx.swap(k, lo);
                lo += 1;
            }
        }
        let mut mid = lo;
        for k in lo..idx.len() {
            if value(idx[k]).is_nan() {
                idx.swap(k, mid);
                mid += 1;
            }
        }
        let n_left = lo;
        let n_right = idx.len() - mid;
        let missing_left = n_left >= n_right;
        let cut = if missing_left { mid } else { lo };
        let me = self.nodes.len();
        self.nodes.push(Node {
            feature: feature as u32 | if missing_left { MISSING_LEFT } else { 0 },
            threshold,
            right: 0,
        });
        self.values.push(depth as f32);
        let (left, right) = idx.split_at_mut(cut);
        self.grow(left, depth + 1, rng);
        self.nodes[me].right = self.nodes.len() as u32;
        self.grow(right, depth + 1, rng);
    }

    /// A random feature that is not constant over `idx` (drawn without replacement until one
    /// is found) and a threshold uniform in `[min, max)` of its finite values; `None` when every
    /// feature is constant.
    fn pick_split(&mut self, idx: &[usize], rng: &mut ChaCha8Rng) -> Option<(usize, f32)> {
        let nf = self.features.len();
        for k in 0..nf {
            let j = rng.random_range(k..nf);
            self.features.swap(k, j);
            let f = self.features[k];
            let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
            for &i in idx {
                let v = self.x[[i, f]];
                if v.is_finite() {
                    min = min.min(v);
                    max = max.max(v);
                }
            }
            if min < max {
                let t = rng.random_range(min..max);
                // Guard against rounding up to `max`: the right child must not be empty.
                let t = if t < max && t >= min { t } else { min };
                return Some((f, t));
            }
        }
        None
    }
}

impl IsolationForest {
    /// Train on `x` (row-major `n_rows × n_features`; NaN = missing), every row taken as
    /// normal (e.g. readings marked healthy, or each machine's first part of history).
    ///
    /// `progress` is called once per finished tree, from worker threads. The result depends
    /// only on the data and `params`, not on the number of threads.
    pub fn fit(
        x: ArrayView2<f32>,
        params: &IsolationParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<IsolationForest, MlError> {
        let (n_rows, n_features) = x.dim();
        if n_rows == 0 || n_features == 0 {
            return Err(MlError::EmptyData {
                rows: n_rows,
                features: n_features,
            });
        }
        if n_rows < 2 {
            return Err(MlError::InvalidParams(
                "an Isolation Forest needs at least 2 rows".to_string(),
            ));
        }
        if n_features >= MISSING_LEFT as usize {
            return Err(MlError::InvalidParams(format!(
                "{n_features} features is too many"
            )));
        }
        params.validate()?;
        let subsample = params.max_samples.min(n_rows);
        let max_depth = params
            .max_depth
            .unwrap_or_else(|| (subsample as f64).log2().ceil() as usize);

        let grown: Vec<(Vec<Node>, Vec<f32>)> = (0..params.n_trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
                rng.set_stream(t as u64);
                let mut idx = rand::seq::index::sample(&mut rng, n_rows, subsample).into_vec();
                let mut b = Builder {
                    x: x.view(),
                    max_depth,
                    nodes: Vec::with_capacity(2 * subsample),
                    values: Vec::with_capacity(2 * subsample),
                    features: (0..n_features).collect(),
                };
                b.grow(&mut idx, 0, &mut rng);
                progress();
                (b.nodes, b.values)
            })
            .collect();

        let mut trees = FlatForest {
            n_features,
            ..FlatForest::default()
        };
        for (nodes, values) in &grown {
            trees.push_tree(nodes, values);
        }
        Ok(IsolationForest {
            trees: RegressionTrees(trees),
            subsample,
        })
    }

    /// Check what makes scoring panic-free and keeps scores in `(0, 1]`: a valid tree
    /// structure, `subsample >= 2` and node path lengths in `[0, MAX_PATH_LENGTH]`. Run on
    /// every deserialization.
    pub fn validate(&self) -> Result<(), IsolationModelError> {
        if self.subsample < 2 {
            return Err(IsolationModelError::Subsample(self.subsample));
        }
        let t = &self.trees.0;
        t.validate_as(Values::Finite)
            .map_err(|e| IsolationModelError::Trees(e.to_string()))?;
        if let Some(node) = t
            .values
            .iter()
            .position(|v| !(0.0..=MAX_PATH_LENGTH).contains(v))
        {
            return Err(IsolationModelError::PathLength {
                node,
                value: t.values[node],
            });
        }
        Ok(())
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

    /// Rows each tree was grown on (`ψ`, the score's normaliser).
    pub fn subsample(&self) -> usize {
        self.subsample
    }

    /// Mean path length to score.
    fn to_score(&self, mean_path: f32) -> f32 {
        let s = (-f64::from(mean_path) / average_path_length(self.subsample)).exp2() as f32;
        s.clamp(f32::MIN_POSITIVE, 1.0)
    }

    /// Anomaly score of one row, in `(0, 1]`; higher is more anomalous. Allocates nothing.
    ///
    /// NaN (and values missing from a short row) follow the larger child at each split (see
    /// the [module docs](self)); extra values are ignored.
    pub fn score_row(&self, row: &[f32]) -> f32 {
        self.to_score(self.trees.0.predict_row(row))
    }

    /// Scores of every row of `x`, in parallel for large batches. Identical to calling
    /// [`IsolationForest::score_row`] on each row.
    pub fn score(&self, x: ArrayView2<f32>) -> Vec<f32> {
        let (n_rows, width) = x.dim();
        if width == 0 {
            return vec![self.score_row(&[]); n_rows];
        }
        let x = x.as_standard_layout();
        let Some(data) = x.as_slice() else {
            // Unreachable: a standard-layout array is contiguous.
            return x
                .rows()
                .into_iter()
                .map(|r| self.score_row(&r.to_vec()))
                .collect();
        };
        let mut out = vec![0.0; n_rows];
        let block = |(rows, out): (&[f32], &mut [f32])| {
            self.trees.0.predict_block(rows, width, out);
            out.iter_mut().for_each(|s| *s = self.to_score(*s));
        };
        if n_rows >= PARALLEL_BATCH_ROWS {
            let chunks = data.par_chunks(BLOCK_ROWS * width);
            chunks.zip(out.par_chunks_mut(BLOCK_ROWS)).for_each(block);
        } else {
            data.chunks(BLOCK_ROWS * width)
                .zip(out.chunks_mut(BLOCK_ROWS))
                .for_each(block);
        }
        out
    }
}

/// The alarm threshold that flags at most a share `rate` (the contamination, in `[0, 1]`) of
/// `scores` (typically the training rows' own scores): a row is anomalous when its score is
/// strictly above the returned value.
///
/// With the finite scores sorted from highest, it is the one at position `floor(rate × n)`, so
/// exactly that many are above it unless ties sit at the cut (then fewer). `rate` 0 gives the
/// highest score (nothing in `scores` flagged); a rate that reaches every score gives 0 (every
/// positive score flagged). NaN scores are ignored.
pub fn threshold_for_rate(scores: &[f32], rate: f64) -> Result<f32, MlError> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(MlError::InvalidParams(format!(
            "anomaly rate {rate} is outside [0, 1]"
        )));
    }
    let mut s: Vec<f32> = scores.iter().copied().filter(|v| !v.is_nan()).collect();
    if s.is_empty() {
        return Err(MlError::EmptyData {
            rows: scores.len(),
            features: 1,
        });
    }
    s.sort_by(|a, b| b.total_cmp(a));
    let k = (rate * s.len() as f64).floor() as usize;
    Ok(s.get(k).copied().unwrap_or(0.0))
}

#[cfg(test)]
#[path = "isolation_tests.rs"]
mod tests;
