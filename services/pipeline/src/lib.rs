//! The ML pipeline's data side.
//!
//! Training data comes from the twin and goes through [`dtwin_features::MachineWindow`], the
//! very code the feature service runs, so the model sees in training exactly what it is served.
//!
//! # Layout
//! - [`dataset`]: [`TwinDataSpec`] → [`Dataset`]: simulate, featurise, label ahead.
//! - [`train`]: split by machine, fit, pick the threshold, evaluate, build the artifact.

pub mod dataset;
pub mod train;

pub use dataset::{Dataset, TwinDataSpec};
pub use train::{train_on, train_twin_model, TrainReport, TrainSpec};
