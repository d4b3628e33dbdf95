//! The predictive-maintenance model: a histogram Random Forest written for this project, the
//! versioned model artifact the inference service loads, and evaluation metrics.
//!
//! Everything here is pure: values in, values out, no I/O, no async. Training is parallel over
//! trees (rayon) yet deterministic: tree `t` draws from ChaCha8 stream `t` of the seed.
//!
//! ```
//! use dtwin_ml::{Forest, ForestParams};
//! let x = ndarray::Array2::from_shape_fn((200, 2), |(i, j)| ((i * 7 + j * 3) % 20) as f32);
//! let y: Vec<bool> = (0..200).map(|i| x[[i, 0]] > 9.0).collect();
//! let params = ForestParams { n_trees: 10, ..ForestParams::default() };
//! let forest = Forest::fit(x.view(), &y, &params, &|| {})?;
//! assert!(forest.predict_proba_row(&[15.0, 1.0]) > 0.5);
//! # Ok::<(), dtwin_ml::MlError>(())
//! ```
//!
//! # Layout
//! - `binning.rs` (private): quantile cut points per feature and the `u8` bin
//!   matrix trees are grown on; NaN gets its own bin.
//! - `tree.rs` (private): grows one tree on bins with weighted gini, per-split
//!   feature sampling and a learned direction for missing values.
//! - `flat.rs` (private): all trees as one compact pre-order node array; leaves loop to
//!   themselves so rows walk a tree in fixed, branch-free steps, eight in lockstep for
//!   batches; Saabas contributions; validated when deserialized.
//! - [`forest`]: [`ForestParams`], [`Forest::fit`] (bootstrap, balanced class weights, rayon),
//!   prediction, contributions, importance; [`MlError`].
//! - `regtree.rs` (private): grows one regression tree on the same bins by variance
//!   reduction; leaves hold mean targets.
//! - [`regressor`]: [`RegressorParams`], [`ForestRegressor`] (same bootstrap, feature sampling,
//!   flat trees and determinism as the classifier), prediction and tree-spread intervals.
//! - [`isolation`]: [`IsolationForest`] (Liu et al. 2008) for anomaly scores without failure
//!   history, on the same flat trees; [`IsolationParams`], [`threshold_for_rate`].
//! - [`artifact`]: [`ModelArtifact`] (JSON, schema `dtwin.model.v1`) and its validation
//!   against `dtwin_schema::feature_set_hash`.
//! - [`reference`]: [`TrainingReference`], the training data's binned distributions stored in
//!   the artifact for drift detection.
//! - [`metrics`]: confusion counts, ROC/PR AUC and curves, threshold pickers, stratified splits;
//!   RMSE and NASA's asymmetric RUL score.

mod binning;
mod flat;
mod regtree;
mod tree;

pub mod artifact;
pub mod forest;
pub mod isolation;
pub mod metrics;
pub mod reference;
pub mod regressor;

pub use artifact::{
    AnomalyMeta, ArtifactError, FloorRule, ModelArtifact, ModelKind, RulMeta, TrainingMeta,
    ARTIFACT_SCHEMA,
};
pub use forest::{ClassWeight, Explained, Forest, ForestParams, MaxFeatures, MlError};
pub use isolation::{threshold_for_rate, IsolationForest, IsolationModelError, IsolationParams};
pub use reference::{
    Binned, BinnedError, ReferenceError, TrainingReference, DEFAULT_REFERENCE_BINS,
};
pub use regressor::{ForestRegressor, RegressorParams};

#[cfg(test)]
mod tests;
