//! The Random Forest: parameters, training in parallel, prediction and explanations.

use ndarray::ArrayView2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::binning::BinMapper;
use crate::flat::{FlatForest, MISSING_LEFT};
use crate::tree::{self, TrainData, TreeConfig};

/// Batches at least this large are predicted in parallel.
const PARALLEL_BATCH_ROWS: usize = 512;
/// Rows predicted together, tree by tree; small enough for their values to stay in L1.
const BLOCK_ROWS: usize = 128;

/// Why training failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MlError {
    /// No rows or no feature columns.
    #[error("training data is empty ({rows} rows × {features} features)")]
    EmptyData {
        /// Number of rows given.
        rows: usize,
        /// Number of features given.
        features: usize,
    },
    /// `x` and `y` disagree on the number of rows.
    #[error("x has {rows} rows but y has {labels} labels")]
    LengthMismatch {
        /// Rows in `x`.
        rows: usize,
        /// Entries in `y`.
        labels: usize,
    },
    /// All labels are equal, so there is nothing to separate.
    #[error("all {rows} labels are {label}; need both classes")]
    SingleClass {
        /// Number of rows.
        rows: usize,
        /// The only label present.
        label: bool,
    },
    /// A regression target is NaN or infinite.
    #[error("target of row {row} is {value}, not a finite number")]
    NonFiniteTarget {
        /// The first such row.
        row: usize,
        /// Its target.
        value: f32,
    },
    /// A parameter is out of range.
    #[error("invalid parameter: {0}")]
    InvalidParams(String),
}

/// How many features to consider at each split.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum MaxFeatures {
    /// `floor(sqrt(n_features))`, at least 1.
    Sqrt,
    /// Every feature.
    All,
    /// `floor(fraction × n_features)`, at least 1; the fraction must be in `(0, 1]`.
    Fraction(f64),
    /// This many features (capped at `n_features`; must be at least 1).
    Count(usize),
}

impl MaxFeatures {
    /// Features to sample per split for `n_features` features, or why the setting is invalid.
    pub(crate) fn resolve(self, n_features: usize) -> Result<usize, MlError> {
        let k = match self {
            MaxFeatures::Sqrt => (n_features as f64).sqrt() as usize,
            MaxFeatures::All => n_features,
            MaxFeatures::Fraction(f) if f > 0.0 && f <= 1.0 => (f * n_features as f64) as usize,
            MaxFeatures::Count(c) if c >= 1 => c.min(n_features),
            other => return Err(MlError::InvalidParams(format!("max_features {other:?}"))),
        };
        Ok(k.max(1))
    }
}

/// How to weight the two classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClassWeight {
    /// Every row weighs 1.
    None,
    /// Class `c` weighs `n / (2 n_c)`, so both classes weigh the same in total.
    Balanced,
}

/// Training parameters. [`Default`] gives the documented values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForestParams {
    /// Number of trees (default 100).
    pub n_trees: usize,
    /// Maximum depth, the root being depth 0 (default 10; at least 1).
    pub max_depth: usize,
    /// A node with fewer rows is not split (default 10).
    pub min_samples_split: usize,
    /// Each child keeps at least this many distinct rows (default 5; at least 1).
    pub min_samples_leaf: usize,
    /// Features sampled per split (default [`MaxFeatures::Sqrt`]).
    pub max_features: MaxFeatures,
    /// Class weighting (default [`ClassWeight::Balanced`]).
    pub class_weight: ClassWeight,
    /// Train each tree on a bootstrap sample (default true).
    pub bootstrap: bool,
    /// Seed; tree `t` uses ChaCha8 stream `t` of it (default 42).
    pub seed: u64,
    /// Bins per feature, 2..=255 (default 255).
    pub max_bins: usize,
}

impl Default for ForestParams {
    fn default() -> Self {
        Self {
            n_trees: 100,
            max_depth: 10,
            min_samples_split: 10,
            min_samples_leaf: 5,
            max_features: MaxFeatures::Sqrt,
            class_weight: ClassWeight::Balanced,
            bootstrap: true,
            seed: 42,
            max_bins: 255,
        }
    }
}

impl ForestParams {
    /// Features to sample per split for `n_features` features, or why the setting is invalid.
    fn resolve_max_features(&self, n_features: usize) -> Result<usize, MlError> {
        self.max_features.resolve(n_features)
    }

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

/// A trained Random Forest classifier for a boolean label.
///
/// Probabilities are the weighted positive share of the reached leaf, averaged over trees.
/// With [`ClassWeight::Balanced`] they are on the balanced scale (as scikit-learn's), so pick the
/// alarm threshold from validation data, e.g. with [`crate::metrics::best_f1_threshold`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Forest {
    trees: FlatForest,
    importance: Vec<f32>,
}

impl Forest {
    /// Train on `x` (row-major `n_rows × n_features`, NaN = missing) and labels `y`.
    ///
    /// `progress` is called once per finished tree, from worker threads. The result depends
    /// only on the data and `params`, not on the number of threads.
    pub fn fit(
        x: ArrayView2<f32>,
        y: &[bool],
        params: &ForestParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Forest, MlError> {
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
        let n_pos = y.iter().filter(|&&b| b).count();
        if n_pos == 0 || n_pos == n_rows {
            return Err(MlError::SingleClass {
                rows: n_rows,
                label: n_pos > 0,
            });
        }
        params.validate()?;
        let cfg = TreeConfig {
            max_depth: params.max_depth,
            min_samples_split: params.min_samples_split,
            min_samples_leaf: params.min_samples_leaf,
            max_features: params.resolve_max_features(n_features)?,
            bootstrap: params.bootstrap,
        };
        let class_weight = match params.class_weight {
            ClassWeight::None => [1.0, 1.0],
            ClassWeight::Balanced => {
                let n = n_rows as f64;
                [
                    n / (2.0 * (n_rows - n_pos) as f64),
                    n / (2.0 * n_pos as f64),
                ]
            }
        };
        let mapper = BinMapper::fit(x, params.max_bins);
        let bins = mapper.transform(x);
        let data = TrainData {
            bins: &bins,
            n_rows,
            n_features,
            mapper: &mapper,
            y,
            class_weight,
        };

        let grown: Vec<_> = (0..params.n_trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
                rng.set_stream(t as u64);
                let tree = tree::grow(&data, &cfg, &mut rng);
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
        Ok(Forest { trees, importance })
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.trees.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.roots.len()
    }

    /// Total number of nodes over all trees.
    pub fn n_nodes(&self) -> usize {
        self.trees.nodes.len()
    }

    /// Probability of the positive class for one row. Allocates nothing.
    ///
    /// NaN means missing; if `row` is shorter than [`Forest::n_features`], the absent trailing
    /// values are treated as missing too, and extra values are ignored.
    pub fn predict_proba_row(&self, row: &[f32]) -> f32 {
        self.trees.predict_row(row)
    }

    /// Probabilities for every row of `x`, in parallel for large batches. Identical to calling
    /// [`Forest::predict_proba_row`] on each row.
    pub fn predict_proba(&self, x: ArrayView2<f32>) -> Vec<f32> {
        let (n_rows, width) = x.dim();
        if width == 0 {
            return vec![self.predict_proba_row(&[]); n_rows];
        }
        let x = x.as_standard_layout();
        let mut out = vec![0.0; n_rows];
        let Some(data) = x.as_slice() else {
            // Unreachable: a standard-layout array is contiguous. Fall back to row by row.
            return x
                .rows()
                .into_iter()
                .map(|r| self.predict_proba_row(&r.to_vec()))
                .collect();
        };
        let block = |(rows, out): (&[f32], &mut [f32])| self.trees.predict_block(rows, width, out);
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

    /// Saabas path contributions: `(bias, per-feature)` with
    /// `bias + contributions.sum() == predict_proba_row(row)` up to rounding.
    ///
    /// The bias is the mean root value (the weighted positive share of the training data); each
    /// split on a row's path credits its feature with the change in node value.
    pub fn contributions(&self, row: &[f32]) -> (f32, Vec<f32>) {
        self.trees.contributions(row)
    }

    /// [`Forest::predict_proba_row`] and [`Forest::contributions`] for many rows at once
    /// (`rows` holds `width` values per row), in one pass over the trees: cheaper per row than
    /// row by row once a few rows are waiting. Identical numbers.
    pub fn explain_rows(&self, rows: &[f32], width: usize) -> Explained {
        let n_rows = rows.len().checked_div(width).unwrap_or(0);
        let rows = &rows[..n_rows * width];
        let n_features = self.n_features();
        let mut probability = vec![0.0; n_rows];
        let mut contributions = vec![0.0; n_rows * n_features];
        let bias = self
            .trees
            .explain_block(rows, width, &mut probability, &mut contributions);
        Explained {
            bias,
            probability,
            contributions,
            n_features,
        }
    }

    /// Mean decrease in weighted gini impurity per feature, normalized per tree then overall;
    /// sums to 1.
    pub fn feature_importance(&self) -> Vec<f32> {
        self.importance.clone()
    }
}

/// What [`Forest::explain_rows`] computed for a batch of rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Explained {
    /// The mean root value (the same for every row).
    pub bias: f32,
    /// Positive-class probability per row.
    pub probability: Vec<f32>,
    /// Per-feature contributions, `n_features` per row, row-major.
    pub contributions: Vec<f32>,
    /// Features per row in `contributions`.
    pub n_features: usize,
}

impl Explained {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.probability.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.probability.is_empty()
    }

    /// The contributions of row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.contributions[i * self.n_features..(i + 1) * self.n_features]
    }
}
